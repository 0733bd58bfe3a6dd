"""Verify one received webhook delivery with the Standard Webhooks library.

Reads JSON on stdin: {"headers": {name: value}, "body": str,
"secrets": {label: "whsec_..."}}. Prints JSON: for each secret label, "ok"
or "refused"; and, under the first secret, "tampered_body" (the body with
one byte changed) and "old_timestamp" (the same delivery re-signed ten
minutes in the past), each "ok" or "refused".
"""
import json
import sys
from datetime import datetime, timedelta, timezone

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def verdict(secret, body, headers):
    try:
        Webhook(secret).verify(body, headers)
        return "ok"
    except WebhookVerificationError:
        return "refused"


def main():
    given = json.load(sys.stdin)
    headers, body, secrets = given["headers"], given["body"], given["secrets"]
    out = {label: verdict(s, body, headers) for label, s in secrets.items()}
    first = next(iter(secrets.values()))
    out["tampered_body"] = verdict(first, body.replace("}", " }", 1), headers)
    old = datetime.now(tz=timezone.utc) - timedelta(minutes=10)
    replay = dict(headers)
    replay["webhook-timestamp"] = str(int(old.timestamp()))
    replay["webhook-signature"] = Webhook(first).sign(headers["webhook-id"], old, body)
    out["old_timestamp"] = verdict(first, body, replay)
    json.dump(out, sys.stdout)


main()
