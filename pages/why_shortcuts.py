import streamlit as st

from explorer.paper.inside import path_length_counts, shipped_surfaces
from explorer.paper.inside.defaults import DEFAULT_IMAGES, PAGE_LESION_IMAGES
from explorer.paper.inside.verdicts import responses_verdict
from explorer.present import inside_figures
from explorer.ui import inside
from explorer.ui.inside_choices import data_choice, images_box

st.title("Why shortcuts work: inside the trained nets")
st.caption("Four looks inside the shipped CIFAR-10 nets: the paper's Fig. 7 (layer responses), how much each "
           "residual block changes its input, what happens when blocks are removed at test time (Veit et al. "
           "2016), and the loss surface around the trained weights (Li et al. 2018).")
nets = inside.shipped_nets()
left, middle, right = st.columns([4, 2, 1])
chosen = left.multiselect("Nets", list(nets), default=list(nets), key="inside.nets")
data, source = data_choice(middle, chosen)
images = images_box(right, source, default=DEFAULT_IMAGES)
responses_tab, branches_tab, lesion_tab, surface_tab = st.tabs(
    ["Layer responses (Fig. 7)", "Residual branches", "Lesion study", "Loss surface"])

with responses_tab:
    st.caption("Std of each 3×3 layer's output after BN, before the ReLU and the addition (§4.2, Fig. 7). "
               "The paper: residual responses are generally smaller than plain ones, and smaller in deeper ResNets.")
    results = inside.view_results("responses", "Compute the responses", chosen, data, images, source=source)
    if results is not None:
        st.plotly_chart(inside_figures.responses_figure(results, [nets.get(r.model) for r in results]), width="stretch")
        st.markdown(responses_verdict(results, [nets.get(r.model) for r in results]))

with branches_tab:
    st.caption("Per block, the mean over the images of ‖F(x)‖ / ‖x‖: how much the residual branch changes its input.")
    residual = [name for name in chosen if inside.is_residual(nets[name])]
    results = inside.view_results("branches", "Compute the branch ratios", residual, data, images,
                                  source=source)
    if results is not None:
        st.plotly_chart(inside_figures.branches_figure(results, [nets.get(r.model) for r in results]), width="stretch")

with lesion_tab:
    st.caption("Remove one block at test time (its branch set to zero, the shortcut kept; a plain block is skipped) "
               "and measure the error; then remove k random blocks. Veit et al.: ResNets degrade gracefully.")
    lesion_images = images_box(st, source, default=PAGE_LESION_IMAGES, key="inside.lesion_images",
                               label="Images for the lesion study")
    studies = inside.view_results("lesion", "Run the lesion study", chosen, data, lesion_images, source=source)
    if studies is not None:
        st.plotly_chart(inside_figures.lesion_blocks_figure(studies, [nets.get(s.model) for s in studies]), width="stretch")
        st.plotly_chart(inside_figures.lesion_random_figure(studies, [nets.get(s.model) for s in studies]), width="stretch")
    blocks = st.slider("Blocks n of a ResNet", 3, 54, 27, key="inside.paths")
    st.plotly_chart(inside_figures.path_length_figure(blocks), width="stretch")
    st.caption(f"An n-block ResNet has 2ⁿ paths ({sum(path_length_counts(blocks)):,} for n = {blocks}); "
               "C(n, k) of them pass through k branches, so most paths are about n/2 blocks long.")

with surface_tab:
    surfaces = shipped_surfaces()
    shown = [surfaces[name] for name in chosen if name in surfaces]
    inside.surface_section(shown, chosen, data, source, {name: nets[name] for name in chosen})
