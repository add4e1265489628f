import pandas as pd
import streamlit as st

from explorer import ui
from explorer.models import get_model_spec, model_names
from explorer.present import figures, tables
from explorer.ui import architecture

st.title("Architecture: Table 1, measured from the live models")
st.caption("Parameters and costs below are measured from the PyTorch modules themselves, on "
           "PyTorch's shape-only *meta* device. **Cost = multiply-accumulates (MACs)**, counted by "
           "`torch.utils.flop_counter.FlopCounterMode` for one 224×224 image: this is what the paper "
           "calls FLOPs. BatchNorm, ReLU, pooling and the shortcut additions are not counted.")
names = model_names("imagenet")
ui.untrained_banner(names)

st.header("The model zoo")
zoo = ui.zoo_rows()
st.dataframe(tables.zoo_table(zoo), hide_index=True, width="stretch", height=tables.row_height(len(zoo)))
st.plotly_chart(figures.zoo_cost_figure(zoo), width="stretch")
with st.expander("Why does torchvision's ResNet-50 cost 4.09 GMACs when the paper says 3.8?", expanded=True):
    st.markdown(
        "The paper's bottleneck block downsamples in its **first 1×1 conv** (stride 2). torchvision, "
        "following later Facebook/NVIDIA training code (\"ResNet v1.5\"), moves the stride to the "
        "**3×3 conv**. The parameters are identical, but the 3×3 conv then runs at twice the "
        "resolution (4× the positions), which adds about 0.23 GMACs and ~0.5% top-1 accuracy. "
        "`resnet50_v1`, `resnet101_v1` and `resnet152_v1` rebuild the paper's block and measure "
        "3.86 / 7.57 / 11.28 GMACs, matching the paper's 3.8 / 7.6 / 11.3. torchvision publishes no "
        "weights for them. Plain nets are the same stacks without shortcuts (Fig. 3, middle): "
        "compare plain34 with VGG-19's 19.6 GMACs to see why the paper calls them cheap.")

with st.expander("The CIFAR-10 nets of §4.2 (trained in the Degradation lab)"):
    st.dataframe(tables.cifar_zoo_table(ui.zoo_rows("cifar")), hide_index=True, width="stretch")
    st.caption("6n+2 layers: a 3×3 conv, three stages of 2n 3×3 convs on 32×32, 16×16 and 8×8 maps "
               "with 16, 32 and 64 filters, global average pooling and a 10-way fc. Plain nets have "
               "exactly the same parameters: option A shortcuts add none. The checkpoints shipped in "
               "pretrained/ were trained on a JPEG copy of CIFAR-10 (quality 75), whose lost detail others "
               "measured at 2-3 points of error; the paper's own 64k-step recipe trails Table 6 on it too "
               "(README, \"Shipped models and runs\").")

st.header("Table 1, regenerated")
resnets = [n for n in names if get_model_spec(n).residual]
torchvision_resnets = [n for n in resnets if get_model_spec(n).variant_of is None]  # not the paper's re-builds
chosen = st.multiselect("Columns", resnets, default=torchvision_resnets)
if chosen:
    # "layer name" as the index: st.table's hide_index is newer than the streamlit this project allows (1.55)
    st.table(pd.DataFrame(tables.paper_table_markdown(ui.paper_table(tuple(chosen)))).set_index("layer name"))
    st.caption("Brackets are residual blocks, `× n` stacked n times. Downsampling is by stride 2 in "
               "the first block of conv3_x, conv4_x and conv5_x (§3.4).")

st.header("One model in detail")
all_names = model_names()
name = st.selectbox("Model", all_names, index=all_names.index("resnet50"),
                    format_func=tables.model_option)
detail = ui.analysis(name)
st.caption(f"{detail.spec.summary}: {detail.params:,} parameters, {detail.macs / 1e9:.2f} GMACs.")
st.dataframe(tables.stage_table(detail), hide_index=True, width="stretch")
with st.expander(f"Every layer of {name} ({len(detail.layers)} modules)"):
    st.dataframe(tables.layer_table(detail), hide_index=True, width="stretch", height=400)

architecture.block_diagrams(name)
architecture.speed_section(torchvision_resnets)
