"""ResNet Explorer: an interactive companion to He et al., *Deep Residual Learning for
Image Recognition* (2015).

The package is the core library (pure PyTorch + plotly). Only ``explorer/app.py`` and
``explorer/ui.py`` import Streamlit; everything else can be used from a script or a test.
"""

__version__ = "0.1.0"
