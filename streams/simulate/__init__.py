"""``recon simulate``: realistic upstream traffic with a ground truth of every outcome."""
