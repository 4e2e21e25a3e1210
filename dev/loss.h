/* [impl:loss] (to be written) */
