"""boto3 and botocore load with the first cloud client, not with the operator (bench p4_memory: about 9 MB)."""

from __future__ import annotations

import subprocess
import sys

IMPORT_THE_OPERATOR = """
import sys
sys.modules.setdefault("kubernetes", None)  # as the CLI does before Kopf is imported
from o4o_operator import cli, handlers, handlers_fleet
from o4o_operator.providers import aws
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("boto3", "botocore", "s3transfer"))
print(",".join(loaded) or "none")
aws.make_boto3_client("lightsail", "eu-west-1", aws.ClientSettings())
print("boto3" in sys.modules and "botocore.config" in sys.modules)
"""


def test_the_operator_loads_boto3_only_when_it_makes_a_client() -> None:
    result = subprocess.run([sys.executable, "-c", IMPORT_THE_OPERATOR], capture_output=True, text=True,
                            check=True, timeout=120)
    before, after = result.stdout.split()
    assert before == "none"
    assert after == "True"
