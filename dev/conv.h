/* [impl:conv] (to be written) */
