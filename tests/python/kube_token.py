"""Lists a namespace's configmaps with a bearer token through the Kubernetes Python client.

Usage: kube_token.py SERVER CA_FILE TOKEN NAMESPACE. Prints the names, one per line, or
`status <code>` when the API server refuses. Run by tests/tests/kube_rbac.rs.
"""
import sys

from kubernetes import client
from kubernetes.client.rest import ApiException


def main(server, ca_file, token, namespace):
    configuration = client.Configuration()
    configuration.host = server
    configuration.ssl_ca_cert = ca_file
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    core = client.CoreV1Api(client.ApiClient(configuration))
    try:
        for item in core.list_namespaced_config_map(namespace).items:
            print(item.metadata.name)
    except ApiException as e:
        print(f"status {e.status}")


if __name__ == "__main__":
    main(*sys.argv[1:])
