"""The views' defaults, in a module without imports so the CLI's ``--help`` stays instant."""

DEFAULT_IMAGES = 1000  # images per view (issue 15)
DEFAULT_GRID = 31  # points per axis of the shipped loss surfaces
DEFAULT_SPAN = 1.0  # α, β from −span to +span: Li et al.'s Fig. 5 and 6 use [−1, 1]
DEFAULT_DRAWS = 3  # random subsets per k in the lesion study: enough to show the spread
# The page's defaults for recomputing on one's own data, sized so that each view of the four
# shipped nets takes under a minute on a 2-core laptop CPU (issue 38; the page says how long
# before its button): responses and branches are one pass, so DEFAULT_IMAGES; the lesion study
# is about 32 passes of ResNet-56 (explorer.paper.inside.lesion.lesion_passes) and a surface grid²
# passes, so they run on fewer images. The precomputed results use all 2,000 shipped images.
PAGE_LESION_IMAGES = 200  # 20 a class
PAGE_SURFACE_IMAGES = 32
PAGE_SURFACE_GRID = 7  # 49 points; the shipped surfaces have 21 × 21
