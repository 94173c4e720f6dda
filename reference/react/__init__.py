"""nano-react: a ReAct tool-using agent (Yao et al. 2023) at nano scale."""
