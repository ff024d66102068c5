"""Semi-supervised GAN classifier training (Odena 2016; Salimans et al. 2016)."""
