"""The views' defaults, in a module without imports so the CLI's ``--help`` stays instant."""

DEFAULT_IMAGES = 1000  # images per view (issue 15)
DEFAULT_GRID = 31  # points per axis of the shipped loss surfaces
DEFAULT_SPAN = 1.0  # α, β from −span to +span: Li et al.'s Fig. 5 and 6 use [−1, 1]
DEFAULT_DRAWS = 3  # random subsets per k in the lesion study: enough to show the spread
