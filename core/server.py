"""Quarry's server: ``streamlit run core/server.py`` runs app.py with the download gate (core.auth.MediaGate).

Streamlit serves downloads, reports and images at ``/media/<id>`` to anyone holding the link; the gate lets
through only browsers whose session is signed in. ``streamlit run app.py`` still works for local single-user
use, but with a password or OpenID Connect configured, app.py refuses to run without the gate.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run core/server.py` puts core/ on the path, not the repository
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from core.auth import MediaGate  # noqa: E402

app = st.App(str(ROOT / "app.py"),
             middleware=[Middleware(MediaGate, base_path=lambda: st.get_option("server.baseUrlPath"))])
