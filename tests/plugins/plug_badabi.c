/* A connector plugin built for another ABI version: lienthongd must refuse
 * it with a message naming both versions. */
#include "connector.h"

static int bad_init(struct conn *c, bool check_only, char **err)
{
	(void)c;
	(void)check_only;
	(void)err;
	return 0;
}

static void bad_free(struct conn *c)
{
	(void)c;
}

const struct connector lienthong_connector = {
	.abi_version = CONN_ABI_VERSION + 98,
	.name = "badabi",
	.description = "test plugin with a wrong ABI version",
	.init = bad_init,
	.free = bad_free,
};
