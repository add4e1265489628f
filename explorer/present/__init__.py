"""Presentation: plotly figures and display tables built from the core's results (data in,
``go.Figure`` or rows out), readable from the back of a room. No Streamlit here."""
