"""The page table: what app.py navigates and the home page lists, in one place.

Pure data (no Streamlit), so the tests iterate it: a page added here is opened by the
AppTest of every page and by the browser test, and cannot be silently left untested.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageInfo:
    path: str  # relative to explorer/, as st.Page resolves it
    title: str
    icon: str
    summary: str  # the home page's line about it


# The navigation (app.py) and the home page's list, in one place.
PAGES = (
    PageInfo("../pages/home.py", "Home", ":material/home:", ""),
    PageInfo("../pages/architecture.py", "Architecture", ":material/account_tree:",
             "The paper's Table 1 regenerated from live PyTorch models; parameters and multiply-adds "
             "of ResNet-18…152, their plain counterparts and VGG-19 (Fig. 3); block diagrams drawn "
             "from the real modules; load and time every depth on this machine."),
    PageInfo("../pages/degradation.py", "Degradation lab", ":material/trending_down:",
             "Plain and residual CIFAR nets (§4.2) trained live, side by side on the same batches: "
             "watch plain-56 end up *worse* than plain-20 on training error within a minute, while "
             "shortcuts fix it; per-layer gradient norms; replay of recorded runs."),
    PageInfo("../pages/inspect_image.py", "Inspect an image", ":material/image_search:",
             "Upload photos (or use the samples): the top-5 classes of a trained ResNet, the feature "
             "maps of any stage or block, Grad-CAM at the end of every stage, and the gradient reaching "
             "each layer of a plain and a residual net of the same depth."),
    PageInfo("../pages/why_shortcuts.py", "Why shortcuts work", ":material/insights:",
             "Inside the trained plain and residual nets: the layer responses of the paper's Fig. 7, how much "
             "each residual block changes its input, a lesion study (remove blocks at test time) and the loss "
             "surface around the trained weights, plain-56 beside ResNet-56."),
    PageInfo("../pages/transfer.py", "Transfer learning", ":material/model_training:",
             "Fine-tune a trained ResNet on new images (CIFAR-10, a folder, or a zip you upload): a new "
             "head on frozen, cached features trains in seconds; save it, reload it and classify a photo. "
             "Plus a preview of random-erasing augmentation."),
)
