"""Data in: images as users hold them, ImageNet's class names, and the plumbing every task's datasets share
(splits and spread picks of a set, a set scored by many processes)."""
