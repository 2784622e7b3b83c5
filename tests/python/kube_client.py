"""Drives ballast-apiserver with the official Kubernetes Python client.

Usage: kube_client.py KUBECONFIG. Prints one line per check; exits non-zero on the first
that fails. Run by tests/tests/kube_python.rs with .tools/python on PYTHONPATH.
"""
import sys
import threading
import time

from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException


def check(what, ok):
    print(("ok " if ok else "FAILED ") + what, flush=True)
    if not ok:
        sys.exit(1)


def raises(status, call):
    try:
        call()
    except ApiException as e:
        return e.status == status
    return False


def main(kubeconfig):
    api_client = config.new_client_from_config(config_file=kubeconfig)
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)

    names = [ns.metadata.name for ns in core.list_namespace().items]
    check("the system namespaces exist", {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(names))

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
    ns = core.read_namespace("py")
    check("a created namespace is Active", ns.status.phase == "Active")

    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings", labels={"app": "py"}), data={"a": "1"})
    created = core.create_namespaced_config_map("py", body)
    check("create answers with a resourceVersion and a uid",
          created.metadata.resource_version and created.metadata.uid)
    check("create of an existing name is 409", raises(409, lambda: core.create_namespaced_config_map("py", body)))
    check("a missing object is 404", raises(404, lambda: core.read_namespaced_config_map("nope", "py")))

    # A dict patch is a strategic merge patch.
    patched = core.patch_namespaced_config_map("settings", "py", {"data": {"b": "2"}})
    check("patch merges", patched.data == {"a": "1", "b": "2"})

    stale = created
    stale.data = {"c": "3"}
    check("replace with a stale resourceVersion is 409",
          raises(409, lambda: core.replace_namespaced_config_map("settings", "py", stale)))
    current = core.read_namespaced_config_map("settings", "py")
    current.data = {"c": "3"}
    replaced = core.replace_namespaced_config_map("settings", "py", current)
    check("replace with the current resourceVersion works", replaced.data == {"c": "3"})

    listed = core.list_namespaced_config_map("py", label_selector="app=py")
    check("label selector", [c.metadata.name for c in listed.items] == ["settings"])
    listed = core.list_namespaced_config_map("py", field_selector="metadata.name=settings")
    check("field selector", len(listed.items) == 1)

    # Pagination: pages of 10 at the first page's revision.
    for i in range(25):
        core.create_namespaced_config_map(
            "py", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"page-{i:02d}", labels={"paged": "yes"})))
    seen, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map("py", label_selector="paged=yes", limit=10, _continue=token)
        pages += 1
        seen += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    check("limit and continue page through every object", seen == [f"page-{i:02d}" for i in range(25)] and pages == 3)

    # Watch: a change made while watching arrives.
    rv = core.list_namespaced_config_map("py").metadata.resource_version
    events = []

    def writer():
        time.sleep(0.5)
        core.create_namespaced_config_map("py", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched")))
        core.delete_namespaced_config_map("watched", "py")

    threading.Thread(target=writer).start()
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, "py", resource_version=rv, timeout_seconds=20):
        if event["object"].metadata.name == "watched":
            events.append(event["type"])
        if len(events) == 2:
            w.stop()
    check("watch sees ADDED then DELETED", events == ["ADDED", "DELETED"])

    # A watch from a revision older than the history kept gets 410 (an ERROR event, which
    # the client retries once and then raises).
    gone = False
    try:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, "py", resource_version="1", timeout_seconds=5):
            pass
    except ApiException as e:
        gone = e.status == 410
    check("a watch from a compacted revision is 410 Expired", gone)

    # Deployments and their scale subresource.
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx")]))))
    apps.create_namespaced_deployment("py", deployment)
    apps.patch_namespaced_deployment_scale("web", "py", {"spec": {"replicas": 3}})
    scale = apps.read_namespaced_deployment_scale("web", "py")
    check("scale through the subresource", scale.spec.replicas == 3)
    check("generation moved with the spec", apps.read_namespaced_deployment("web", "py").metadata.generation == 2)

    # The dynamic client: discovery, then server-side apply.
    dyn = dynamic.DynamicClient(api_client)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    applied = cms.server_side_apply(
        body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "namespace": "py"},
              "data": {"k": "v"}},
        field_manager="python")
    check("server-side apply through the dynamic client", applied.data.k == "v")

    core.delete_namespace("py")
    deadline = time.time() + 30
    while time.time() < deadline:
        if raises(404, lambda: core.read_namespace("py")):
            break
        time.sleep(0.2)
    check("a deleted namespace goes, with its content", raises(404, lambda: core.read_namespace("py")))
    print("OK")


if __name__ == "__main__":
    main(sys.argv[1])
