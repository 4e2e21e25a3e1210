/* [impl:attn] (to be written) */
