#!/usr/bin/env python3
"""Print the demo Secret `app-secrets` as JSON with freshly generated values, for
`kubectl create -f -` (stdin, so no value ever appears in a process's arguments).

Usage: demo/secret.py [NAMESPACE]
The values are random on every run and never written to disk.
"""
import base64
import json
import secrets
import string
import sys

namespace = sys.argv[1] if len(sys.argv) > 1 else "prod"
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
json.dump(
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "app-secrets", "namespace": namespace, "labels": {"app": "ai-agents"}},
        "type": "Opaque",
        "data": {k: b64(v) for k, v in values.items()},
    },
    sys.stdout,
)
