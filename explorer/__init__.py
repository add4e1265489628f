"""ResNet Explorer: an interactive companion to He et al., *Deep Residual Learning for
Image Recognition* (2015).

The package is grouped by kind, each layer importing only from the layers before it
(tests/test_layout.py checks the direction):

- ``settings``, ``devices``, ``files``, ``typed_json``, ``words``: the foundation;
- ``models``: what a network *is* (the registry, the CIFAR and ImageNet nets, their anatomy);
- ``data``: data sources, images and archives;
- ``training``: the paper's recipe (§4.2) and the lock-step engine around one ``train_step``;
- ``store``: what is kept on disk: checkpoints, torchvision weights, run records, states;
- ``paper``: the lesson, one artefact a module (``table1``, ``fig6``, ``gradcam``, …; ``inside/``);
- ``transfer``: fine-tuning a trained ResNet on new data;
- ``present``: plotly figures and display tables;
- ``server``: the class server (scheduler, sessions, jobs, links);
- ``cli`` and ``ui`` (with ``app.py``): the front ends. Only ``ui`` and ``app.py`` import Streamlit.
"""

__version__ = "0.1.0"
