// SPDX-License-Identifier: GPL-2.0
/* hello: the smallest useful out-of-tree module, packaged for DKMS the Arch way. */
#include <linux/module.h>
#include <linux/init.h>

static int __init hello_init(void)
{
	pr_info("hello: version " THIS_VERSION " loaded\n");
	return 0;
}

static void __exit hello_exit(void)
{
	pr_info("hello: unloaded\n");
}

module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
MODULE_VERSION(THIS_VERSION);
MODULE_DESCRIPTION("hello, built by DKMS");
