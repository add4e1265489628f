"""Entry point: ``streamlit run explorer/app.py``. Navigation and the shared sidebar only."""

import sys
from pathlib import Path

# `streamlit run` puts explorer/ on sys.path, not the project root; the pages import
# `explorer`, so make the package importable without requiring an install.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

# Imported whole before any page runs: plotly uses pandas when `sys.modules` has it, and
# Streamlit imports it lazily, so a chart drawn in one session while another session's first
# table is still importing pandas met a half-initialised module ("partially initialized module
# 'pandas' has no attribute 'Series'", seen by benchmarks/classroom_load.py).
import pandas  # noqa: E402, F401
import streamlit as st  # noqa: E402

from explorer import ui  # noqa: E402
from explorer.navigation import PAGES  # noqa: E402
from explorer.server.sessions import quiet_closed_tab_tracebacks  # noqa: E402

st.set_page_config(page_title="ResNet Explorer", page_icon="🧱", layout="wide")
quiet_closed_tab_tracebacks()  # a closed tab is not a server error (explorer/server/sessions.py)

navigation = st.navigation([st.Page(page.path, title=page.title, icon=page.icon, default=index == 0)
                            for index, page in enumerate(PAGES)])
ui.device_picker()
ui.keep_form_state("lab.")  # the lab's settings survive a look at another page
ui.keep_form_state("inspect.")  # and the Inspect page's view (model, image, class, open tab, stage) too
ui.report_errors(navigation.run)()
