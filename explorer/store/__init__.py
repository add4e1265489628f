"""What is kept on disk and read back, checked: the project's checkpoints and their manifest,
torchvision's ImageNet weights, the classifiers loaded from either, run records, resumable
training states, and the README's tables of what ``pretrained/`` ships."""
