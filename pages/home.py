import streamlit as st

st.title("ResNet Explorer")
st.caption("An interactive companion to He, Zhang, Ren and Sun, *Deep Residual Learning for "
           "Image Recognition* (CVPR 2016, arXiv:1512.03385).")

left, right = st.columns([3, 2])
with left:
    st.markdown(r"""
### The idea in four lines
1. Deeper plain networks should never be worse than shallower ones: the extra layers could
   just copy their input. Yet in practice a 56-layer plain net has *higher training error*
   than a 20-layer one (Fig. 1). This is the **degradation problem**: an optimisation
   difficulty, not overfitting.
2. So let each block learn only a correction. Instead of asking layers to fit a mapping
   $H(x)$ directly, they fit the **residual** $F(x) = H(x) - x$ and the block outputs
   $$H(x) = F(x) + x.$$
3. The $+\,x$ is a **shortcut connection**: free (no parameters, one addition), and it
   makes "do nothing" the easiest thing to learn ($F = 0$). Gradients also flow back
   through it unchanged, so the signal reaches early layers even in very deep nets.
4. With shortcuts, depth helps again: ResNet-152 beats ResNet-34 on ImageNet while costing
   less than VGG-19 (11.3 vs 19.6 billion multiply-adds).
""")
with right:
    st.latex(r"y = \underbrace{\mathcal{F}(x, \{W_i\})}_{\text{2–3 conv layers}} + \underbrace{x}_{\text{shortcut}}")
    st.caption("Eq. (1) of the paper. When shapes change, the shortcut becomes a 1×1 projection "
               "$W_s x$ (Eq. 2) or zero-pads the extra channels (option A).")

st.markdown("### What each page shows")
st.page_link("../pages/architecture.py", label="Architecture", icon=":material/account_tree:")
st.markdown("The paper's Table 1 regenerated from live PyTorch models; parameters and multiply-adds "
            "of ResNet-18…152, their plain counterparts and VGG-19 (Fig. 3); block diagrams drawn "
            "from the real modules; load and time every depth on this machine.")
st.page_link("../pages/degradation.py", label="Degradation lab", icon=":material/trending_down:")
st.markdown("Plain and residual CIFAR nets (§4.2) trained live, side by side on the same batches: "
            "watch plain-56 end up *worse* than plain-20 on training error within a minute, while "
            "shortcuts fix it; per-layer gradient norms; replay of recorded runs.")
st.page_link("../pages/inspect_image.py", label="Inspect an image", icon=":material/image_search:")
st.markdown("Upload photos (or use the samples): the top-5 classes of a trained ResNet, the feature "
            "maps of any stage or block, Grad-CAM at the end of every stage, and the gradient reaching "
            "each layer of a plain and a residual net of the same depth.")
st.page_link("../pages/transfer.py", label="Transfer learning", icon=":material/model_training:")
st.markdown("Fine-tune a trained ResNet on new images (CIFAR-10, a folder, or a zip you upload): a new "
            "head on frozen, cached features trains in seconds; save it, reload it and classify a photo. "
            "Plus a preview of random-erasing augmentation.")
st.info("The device in use is shown in the sidebar; change it there (CUDA GPU → Apple MPS → CPU "
        "is the default order).", icon="💡")
