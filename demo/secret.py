#!/usr/bin/env python3
"""Print the demo Secret `app-secrets` as JSON with freshly generated values, for
`kubectl create -f -` (stdin, so no value ever appears in a process's arguments).

Usage: demo/secret.py [NAMESPACE] [--postgres-admin]
With --postgres-admin (the real stack, demo/app.yaml), app-secrets also holds `postgres-user`
(the role the app logs in as), and the output is a List that also holds `postgres-admin` (key
postgres-password: the superuser's password of the demo's PostgreSQL).
The values are random on every run and never written to disk.
"""
import base64
import json
import secrets
import string
import sys

args = [a for a in sys.argv[1:] if a != "--postgres-admin"]
with_admin = "--postgres-admin" in sys.argv[1:]
namespace = args[0] if args else "prod"
alphabet = string.ascii_letters + string.digits


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


values = {
    # like `openssl rand -base64 32`
    "postgres-password": base64.b64encode(secrets.token_bytes(32)).decode(),
    "redis-password": base64.b64encode(secrets.token_bytes(32)).decode(),
    # a project key's shape: sk-proj-...
    "openai-api-key": "sk-proj-" + "".join(secrets.choice(alphabet) for _ in range(48)),
    # a Fernet key: 32 random bytes, URL-safe base64
    "encryption-key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
}
if with_admin:
    # The real stack's app logs in as the role this key names (`kubectl rotate postgres
    # --strategy alternating-users` switches it between ai_agents and ai_agents_clone).
    values = {"postgres-user": "ai_agents", **values}
app_secrets = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "app-secrets", "namespace": namespace, "labels": {"app": "ai-agents"}},
    "type": "Opaque",
    "data": {k: b64(v) for k, v in values.items()},
}
if with_admin:
    admin = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "postgres-admin", "namespace": namespace, "labels": {"app": "postgres"}},
        "type": "Opaque",
        "data": {"postgres-password": b64(base64.b64encode(secrets.token_bytes(32)).decode())},
    }
    json.dump({"apiVersion": "v1", "kind": "List", "items": [app_secrets, admin]}, sys.stdout)
else:
    json.dump(app_secrets, sys.stdout)
