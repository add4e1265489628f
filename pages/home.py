import streamlit as st

from explorer.navigation import PAGES

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
# One card per page, two to a row: the title large enough for the back of the room, the link
# an explicit "Open …" (a page_link's own label is body-text size).
pages = PAGES[1:]
for first in range(0, len(pages), 2):
    for column, page in zip(st.columns(2), pages[first:first + 2]):
        card = column.container(border=True, height="stretch")
        card.subheader(f"{page.icon} {page.title}", anchor=False)
        card.markdown(page.summary)
        card.page_link(page.path, label=f"Open {page.title}", icon=":material/arrow_forward:")
st.info("The device in use is shown in the sidebar; change it there (CUDA GPU → Apple MPS → CPU "
        "is the default order).", icon=":material/lightbulb:")
