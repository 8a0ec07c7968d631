/*
 * files: drop folders (see files.c). Besides the generic record exchange
 * (pull/ack/push), its typed interface (`const struct files_ops *` in
 * conn->type->ext) lets a flow read a file form of its own — the payment
 * flow's daily transaction list, whose rows are judged one by one, which a
 * whole-file parse would refuse at the first bad one.
 */
#ifndef LT_FILES_H
#define LT_FILES_H

#include <stddef.h>

#include "connector.h"

struct files_ops {
	/*
	 * Finds in_dir/name, a plain file name, without reading it: 0 with
	 * *path (caller frees) and *max_bytes (max_file_bytes) when it is a
	 * regular file (never a symlink) last modified at least min_age ago;
	 * -ENOENT when there is none, or not yet (too young, or in_dir
	 * missing); -EFBIG (larger than max_file_bytes), -EINVAL (not a plain
	 * name, not a regular file, no in_dir) or another -errno with *why
	 * (caller frees). The flow reads it, on any thread, and then acks a
	 * batch whose token is name with the generic ack: done/ once handled,
	 * failed/ with the reason when it never can be.
	 */
	int (*locate)(struct conn *c, const char *name, char **path, size_t *max_bytes, char **why);
};

extern const struct connector conn_files;

#endif
