"""Training: supervised fine-tuning (SFT) and SimPO + NLL preference training, wrapping TRL."""
