/* [impl:optim] (to be written) */
