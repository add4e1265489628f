"""The lesson: one artefact of the paper a module, computed from live models.

``table1`` (Table 1 from the real modules), ``diagrams`` (Fig. 2/3's blocks), ``speed`` (does
ResNet-152 run here?), ``degradation`` and ``fig6`` (§4.2, Fig. 1/6: plain nets get worse with
depth, residual nets better), ``features`` and ``gradcam`` (what a trained net sees), and
``inside/`` (Fig. 7's responses, branch ratios, lesions, loss surfaces).
"""
