"""What of a database Secret is redacted: its password and generated secrets, never the names it gives.

The database stage's message says which database it made and where ("o4o_x at 127.0.0.1:5432"); when the
whole Secret was registered with the redactor, that message read "[REDACTED] at [REDACTED]:[REDACTED]".
"""

from __future__ import annotations

from o4o_operator.models_database import EXTERNAL_SECRET_FIELD, GENERATED_SECRET_FIELD, secret_values
from o4o_operator.redaction import Redactor


def test_the_generated_secret_redacts_passwords_and_keeps_names() -> None:
    data = {"DB_NAME": "o4o_shop_db", "DB_USERNAME": "o4o_shop_db", "DB_PASSWORD": "pw-Z2Vu3XJhdGVk",
            "JWT_SECRET": "jwt-c2VjcmV0LXZhbHVl", "ADMIN_EMAIL": "admin@shop.example.com",
            "ADMIN_PASSWORD": "admin-cGFzc3dvcmQ"}
    redact = Redactor(secret_values(GENERATED_SECRET_FIELD, data))
    message = redact("Database ready: o4o_shop_db at 127.0.0.1:5432 (admin admin@shop.example.com); "
                     "password pw-Z2Vu3XJhdGVk, jwt jwt-c2VjcmV0LXZhbHVl, admin admin-cGFzc3dvcmQ")
    assert "o4o_shop_db at 127.0.0.1:5432" in message and "admin@shop.example.com" in message
    for secret in ("pw-Z2Vu3XJhdGVk", "jwt-c2VjcmV0LXZhbHVl", "admin-cGFzc3dvcmQ"):
        assert secret not in message


def test_an_external_database_secret_redacts_only_its_password() -> None:
    data = {"host": "db.internal.example", "port": "6543", "name": "shop", "user": "shop_owner",
            "password": "ext-cGFzc3dvcmQx", "sslMode": "require"}
    message = Redactor(secret_values(EXTERNAL_SECRET_FIELD, data))(
        "Database ready: shop at db.internal.example:6543 as shop_owner with ext-cGFzc3dvcmQx")
    assert message == "Database ready: shop at db.internal.example:6543 as shop_owner with [REDACTED]"


def test_any_other_secret_is_redacted_whole() -> None:
    data = {"DB_NAME": "user-supplied-value", "TOKEN": "tok-dG9rZW4"}
    message = Redactor(secret_values("spec.env[0]", data))("user-supplied-value tok-dG9rZW4")
    assert message == "[REDACTED] [REDACTED]"
