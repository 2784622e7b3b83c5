//! The official Kubernetes Python client against ballast-apiserver over a real `ballast`
//! node: CRUD, conflicts, selectors, pagination, watch and its 410 handling, the scale
//! subresource, server-side apply through the dynamic client, namespace deletion.

use ballast_tests::{run_python, ApiServer, Node};

#[test]
fn the_kubernetes_python_client_works_against_the_api_server() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"));
    let api = ApiServer::start(&dir.path().join("api"), &[node.url()], &[]);
    let kubeconfig = api.kubeconfig();
    let (ok, stdout, stderr) = run_python("kube_client.py", &[kubeconfig.to_str().unwrap()]);
    assert!(
        ok && stdout.contains("OK"),
        "{stdout}\n{stderr}\n{}",
        api.log()
    );
}
