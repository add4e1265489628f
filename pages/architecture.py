import streamlit as st

from explorer import figures, speed, ui
from explorer.models import get_model_spec, model_names

st.title("Architecture: Table 1, measured from the live models")
st.caption("Parameters and costs below are measured from the PyTorch modules themselves, on "
           "PyTorch's shape-only *meta* device. **Cost = multiply-accumulates (MACs)**, counted by "
           "`torch.utils.flop_counter.FlopCounterMode` for one 224×224 image: this is what the paper "
           "calls FLOPs. BatchNorm, ReLU, pooling and the shortcut additions are not counted.")
names = model_names("imagenet")
ui.untrained_banner(names)

st.header("The model zoo")
zoo = ui.zoo_rows()
st.dataframe(ui.zoo_table(zoo), hide_index=True, width="stretch")
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
    st.dataframe(ui.cifar_zoo_table(ui.zoo_rows("cifar")), hide_index=True, width="stretch")
    st.caption("6n+2 layers: a 3×3 conv, three stages of 2n 3×3 convs on 32×32, 16×16 and 8×8 maps "
               "with 16, 32 and 64 filters, global average pooling and a 10-way fc. Plain nets have "
               "exactly the same parameters: option A shortcuts add none.")

st.header("Table 1, regenerated")
resnets = [n for n in names if get_model_spec(n).has_shortcuts]
chosen = st.multiselect("Columns", resnets, default=[n for n in resnets if not n.endswith("_v1")])
if chosen:
    st.dataframe(ui.paper_table(tuple(chosen)), hide_index=True, width="stretch")
    st.caption("Brackets are residual blocks, `× n` stacked n times. Downsampling is by stride 2 in "
               "the first block of conv3_x, conv4_x and conv5_x (§3.4).")

st.header("One model in detail")
all_names = model_names()
name = st.selectbox("Model", all_names, index=all_names.index("resnet50"),
                    format_func=lambda n: f"{n} ({ui.weights_label(n)})")
detail = ui.analysis(name)
st.caption(f"{detail.spec.summary}: {detail.params:,} parameters, {detail.macs / 1e9:.2f} GMACs.")
st.dataframe(ui.stage_table(detail), hide_index=True, width="stretch")
with st.expander(f"Every layer of {name} ({len(detail.layers)} modules)"):
    st.dataframe(ui.layer_table(detail), hide_index=True, width="stretch", height=400)

st.header("Inside a block")
st.caption("Drawn from the modules of the model above with `torch.fx` (blue: the residual path F(x); "
           "red: the shortcut). Pick resnet18/34 above for the basic block, resnet50 or deeper for the "
           "bottleneck (Fig. 5), plain34 for a block without shortcut.")
blocks = ui.block_diagrams(name)
for column, block in zip(st.columns(len(blocks) or 1), blocks):
    column.graphviz_chart(block.dot)
    column.caption(block.caption)
if blocks:
    with st.expander(f"The code that runs: `{blocks[0].block_class}.forward`"):
        st.code(blocks[0].forward_source, language="python")

st.header(f"Load every depth on {ui.current_device().type.upper()}")
batch = st.select_slider("Batch size N for throughput", [1, 2, 4, 8, 16, 32, 64, 128], value=8)
if st.button("Load and time ResNet-18…152", type="primary"):
    depths = [n for n in resnets if not n.endswith("_v1")]
    progress = st.progress(0.0, text="Loading…")
    rows = []
    for row in speed.measure_speed(depths, ui.current_device(), batch_size=batch):
        rows.append(row)
        progress.progress(len(rows) / len(depths), text=f"{row.name}: done")
    st.session_state["speed_rows"] = rows
if rows := st.session_state.get("speed_rows"):
    st.dataframe(ui.speed_table(rows), hide_index=True, width="stretch")
    st.plotly_chart(figures.speed_figure(rows), width="stretch")
