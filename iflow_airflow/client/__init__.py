"""Outside Airflow: the REST client, the engine API, the embedded Airflow.

Transitional, for the flat layout only: until issue 12 moves ``client.py`` into this
folder, this package shadows that module, so it loads it and re-exports its names
(``from iflow_airflow.client import AirflowRestClient`` keeps working). At the
merge with the stage layout, take the stage layout's ``__init__.py`` instead.
"""

import importlib.util as _util
import sys as _sys
from pathlib import Path as _Path

_FLAT = _Path(__file__).resolve().parent.parent / "client.py"
if _FLAT.is_file():
    _spec = _util.spec_from_file_location("iflow_airflow._client_flat", _FLAT)
    assert _spec is not None and _spec.loader is not None
    _mod = _util.module_from_spec(_spec)
    _sys.modules[_spec.name] = _mod
    _spec.loader.exec_module(_mod)
    globals().update({k: v for k, v in vars(_mod).items() if not k.startswith("__")})
