/* [impl:elem] (to be written) */
