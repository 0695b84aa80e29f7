"""Hooks of scripts/schemathesis.

A client makes up a fresh Idempotency-Key for each request it means to be
new, and sends the same key again only to retry the same request. Keys
drawn from the document's schema collide ("0" for two different bodies),
which the node rightly answers with 400 idempotency_error; so every
generated key is replaced by a random one here, as a client's would be.
"""

import re
import uuid

import schemathesis


# The document's pattern of the header.
VALID = re.compile(r"^[!-~]([\t -~]*[!-~])?$")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    # Only a valid key: an invalid one is a negative case, to be refused.
    if isinstance(key, str) and len(key) <= 255 and VALID.match(key):
        headers["Idempotency-Key"] = str(uuid.uuid4())
    for where in (kwargs.get("headers"),):
        if isinstance(where, dict) and isinstance(where.get("Idempotency-Key"), str):
            if len(where["Idempotency-Key"]) <= 255 and VALID.match(where["Idempotency-Key"]):
                where["Idempotency-Key"] = headers.get("Idempotency-Key", str(uuid.uuid4()))


# Rules a JSON Schema cannot state, because they depend on the node's data
# or on two parameters at once. A request breaking one is well-formed and
# rightly refused with 400 naming the parameter; only those refusals, and
# only as "schema-valid request rejected", are let through here. Every
# other failure fails the run.
#   - a list cursor must name an object of that list ("No such payment: …");
#   - a consistency proof goes from a smaller tree to a larger one
#     (`from` <= `to`);
#   - a card number passes the Luhn check and its brand's lengths, its
#     expiry is not past, its CVC has its brand's length;
#   - a crypto payment names a chain the node watches and an asset it
#     accepts there;
#   - an object named in a body exists (a payment, a webhook endpoint);
#   - a crypto address in mixed case carries its EIP-55 checksum;
#   - a webhook URL passes the node's URL policy (a public https host, or
#     in dev mode http and loopback too; resolved before it is accepted),
#     and a return URL parses as one (the pattern only approximates URL
#     syntax: hosts, ports and escapes have rules of their own);
#   - a payment method type is offered by this node (a processor or a
#     chain behind it: configuration, not form);
#   - with `confirm: true`, the method's type is among the payment's
#     `payment_method_types` (two fields of one body);
#   - a refund's amount is at most what remains to refund of its payment.
STATEFUL_RULES = (
    ("starting_after", "No such "),
    ("ending_before", "No such "),
    ("from", " is larger than to "),
    ("payment_method.card.", ""),
    ("payment_method.crypto.", ""),
    ("payment", "No such payment"),
    ("endpoint", "No such "),
    ("crypto_destination", "EIP-55"),
    ("url", ""),
    ("return_url", ""),
    ("payment_method_types[", "not available on this node"),
    ("payment_method.type", "is not among this payment's payment_method_types"),
    ("amount", "is greater than what remains to refund"),
)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    # 429 is documented on every operation: a run this fast trips the
    # per-key and per-address budgets (bad credentials included) by design.
    if response is not None and response.status_code == 429:
        return False
    # ST202: a schema-valid request rejected.
    if getattr(failure, "code", None) != "ST202":
        return True
    if response is None or response.status_code != 400:
        return True
    try:
        error = response.json()["error"]
    except Exception:
        return True
    if error.get("code") == "resource_missing":
        # The body names an object that does not exist (data, not form).
        return False
    for param, words in STATEFUL_RULES:
        given = error.get("param") or ""
        matches = given.startswith(param) if param.endswith((".", "[")) else given == param
        if matches and words in error.get("message", ""):
            return False
    return True
