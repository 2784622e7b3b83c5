"""Drives a member's JSON gateway with etcd3gw (OpenStack's client of etcd's gateway).

Usage: etcd3gw_client.py HOST PORT. Prints one line per check; exits non-zero on the
first that fails. Run by tests/tests/gateway.rs with .tools/python on PYTHONPATH.
"""
import sys
import threading

from etcd3gw.client import Etcd3Client


def check(what, ok):
    print(("ok " if ok else "FAILED ") + what, flush=True)
    if not ok:
        sys.exit(1)


def main(host, port):
    client = Etcd3Client(host=host, port=int(port))
    check("status names this member's version",
          client.status()["version"].startswith("3.5."))
    check("members lists one", len(client.members()) == 1)

    check("put", client.put("gw/a", "1"))
    check("get", client.get("gw/a") == [b"1"])
    check("create refuses an existing key", not client.create("gw/a", "2"))
    check("create makes a new key", client.create("gw/b", "2"))
    check("replace compares and swaps", client.replace("gw/a", "1", "3"))
    check("replace refuses a stale value", not client.replace("gw/a", "1", "4"))
    check("get_prefix",
          sorted(v for v, _ in client.get_prefix("gw/")) == [b"2", b"3"])

    lease = client.lease(ttl=30)
    check("lease granted", lease.id > 0 and 0 < lease.ttl() <= 30)
    check("put with a lease", client.put("gw/leased", "x", lease=lease))
    check("lease keys", lease.keys() == [b"gw/leased"])
    check("lease refreshed", lease.refresh() > 0)
    check("lease revoked", lease.revoke())
    check("its key went with it", client.get("gw/leased") == [])

    seen = []
    def watch():
        seen.append(client.watch_once("gw/watched", timeout=10))
    watcher = threading.Thread(target=watch)
    watcher.start()
    # watch_once has no created signal: put until the event arrives.
    for _ in range(50):
        client.put("gw/watched", "event")
        watcher.join(0.2)
        if not watcher.is_alive():
            break
    check("watch_once saw the put",
          bool(seen) and seen[0]["kv"]["value"] == b"event")

    lock = client.lock(id="gw-lock", ttl=30)
    check("lock acquired", lock.acquire())
    check("lock held", lock.is_acquired())
    check("lock released", lock.release())

    check("delete", client.delete("gw/a"))
    check("delete of a missing key", not client.delete("gw/a"))
    check("delete_prefix", client.delete_prefix("gw/"))
    check("nothing left", client.get_prefix("gw/") == [])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
