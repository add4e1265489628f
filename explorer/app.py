"""Entry point: ``streamlit run explorer/app.py``. Navigation and the shared sidebar only."""

import sys
from pathlib import Path

# `streamlit run` puts explorer/ on sys.path, not the project root; the pages import
# `explorer`, so make the package importable without requiring an install.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from explorer import ui  # noqa: E402

st.set_page_config(page_title="ResNet Explorer", page_icon="🧱", layout="wide")

# Paths are relative to this file's folder, as st.Page resolves them.
navigation = st.navigation([
    st.Page("../pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("../pages/architecture.py", title="Architecture", icon=":material/account_tree:"),
    st.Page("../pages/degradation.py", title="Degradation lab", icon=":material/trending_down:"),
    st.Page("../pages/inspect_image.py", title="Inspect an image", icon=":material/image_search:"),
    st.Page("../pages/transfer.py", title="Transfer learning", icon=":material/model_training:"),
])
ui.device_picker()
navigation.run()
