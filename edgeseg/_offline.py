"""No network at run time: switch off the usage telemetry of OpenVINO and NNCF before they load.

`import openvino` starts OpenVINO's telemetry (it loads the model converter, which does), and NNCF
starts its own: unless the user ran `opt_in_out --opt_out`, both count a missing consent file as
consent, send events to Google Analytics and write counters under ~/intel. ONNX Runtime stores
telemetry events under ~/.cache/Microsoft. An SDK running unattended on robots and cameras must not
do that behind its user's back: `import edgeseg` sets the switches ONNX Runtime and NNCF read from
the environment, and edgeseg imports OpenVINO through `quiet_telemetry()`. The user's own choice (a
variable already set, an opt-out or opt-in file) is not touched.
"""

from __future__ import annotations

import os
import sys

__all__ = ["ENV_SWITCHES", "quiet_telemetry", "set_env_switches"]

# Read by the libraries when they load; a value the user set is respected.
ENV_SWITCHES = {
    # ONNX Runtime keeps a device id and an event store for its telemetry under
    # ~/.cache/Microsoft/DeveloperTools unless this is set before it loads.
    "ORT_DISABLE_TELEMETRY": "1",
    # NNCF replaces its telemetry with a no-op stub when this is set (nothing else depends on it).
    "NNCF_CI": "1",
}


def set_env_switches() -> None:
    """Set the telemetry switches the libraries read from the environment (cheap; run at import)."""
    for name, value in ENV_SWITCHES.items():
        os.environ.setdefault(name, value)


def quiet_telemetry() -> None:
    """Make the first import of openvino (and later nncf) start with telemetry off; idempotent."""
    set_env_switches()
    if "openvino" in sys.modules:
        return
    # openvino_telemetry declines consent in CI (its `disable_in_ci`), decided once, when OpenVINO
    # creates its telemetry object during `import openvino`; CI is set only for that import.
    saved = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        import openvino  # noqa: F401
    except ImportError:
        pass  # the caller reports the missing package
    finally:
        if saved is None:
            del os.environ["CI"]
        else:
            os.environ["CI"] = saved
