/*
 * nodetrim: keeps the kernel's names within their share of
 * --metadata-cache-size.
 *
 * The kernel keeps every name readdirplus or a lookup gave it until it runs
 * short of memory, and for each the daemon keeps a node (fs/inode.h):
 * `ls -l` of one directory of 1,000,000 keys left 1,000,002 nodes, some
 * 220 MB. One thread watches what the inode table takes. Past the names'
 * share it asks the kernel to forget the names least recently used
 * (FUSE_NOTIFY_PRUNE, or by name where the kernel lacks it), and the
 * FORGETs that follow free their nodes: files, and, where the kernel
 * prunes, directories none of whose names it holds. The same thread hands
 * freed pages back to the kernel (malloc_trim, at most once a second) after
 * a trim and once the listings shrank by 8 MiB or more. A name let go that
 * is used again costs a lookup: answered from its directory's listing when
 * that is kept, else by asking S3. `ls -l`, `find` and `rsync` stat each
 * name right after readdir hands it out, so only names nobody has used for
 * a while go.
 *
 * The share is the budget less what the listings hold now (kept and being
 * read), but never less than a floor of 8 MiB (some 38,000 names): listings
 * and names together stay within the budget plus 8 MiB.
 *
 * The kernel serves the notification holding the directory's lock, which a
 * readdir holds while it waits for this daemon: only this thread sends
 * them, holding no lock of the daemon's.
 */
#ifndef IRSAFS_FS_NODETRIM_H
#define IRSAFS_FS_NODETRIM_H

#include <stddef.h>

struct irsafs;
struct nodetrim;

/* Bytes the listings hold now (arg as given to nodetrim_start). */
typedef size_t (*nodetrim_others_fn)(void *arg);

/*
 * Start trimming fs's inode table (fs->se set, the mount up) to within
 * budget bytes less others(arg) (NULL: nothing else counts). NULL when the
 * thread cannot start: then nothing is trimmed, which is logged.
 */
struct nodetrim *nodetrim_start(struct irsafs *fs, size_t budget, nodetrim_others_fn others,
				void *arg);
/* Stop and free (NULL does nothing). Before the session and the table go. */
void nodetrim_stop(struct nodetrim *nt);
/* How many names the kernel was asked to forget (0 for NULL). */
unsigned long long nodetrim_let_go(const struct nodetrim *nt);

#endif
