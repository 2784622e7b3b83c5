"""An admission webhook over HTTPS, for tests/tests/kube_admission.rs.

Usage: webhook.py PORT CERT KEY. Prints `ready` once it listens. POST /validate refuses
objects labelled deny=yes (403 with a message); POST /mutate adds the label mutated=yes
with a JSON patch. Both answer AdmissionReview v1 with the request's uid.
"""
import base64
import json
import ssl
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        response = {"uid": request["uid"], "allowed": True}
        labels = ((request.get("object") or {}).get("metadata") or {}).get("labels") or {}
        if self.path == "/validate" and labels.get("deny") == "yes":
            response = {
                "uid": request["uid"],
                "allowed": False,
                "status": {"code": 403, "message": "configmaps labelled deny=yes are refused"},
            }
        elif self.path == "/mutate":
            patch = [] if labels else [{"op": "add", "path": "/metadata/labels", "value": {}}]
            patch.append({"op": "add", "path": "/metadata/labels/mutated", "value": "yes"})
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main(port, cert, key):
    server = HTTPServer(("127.0.0.1", int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
