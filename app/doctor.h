/*
 * doctor: `irsafs doctor BUCKET [--prefix P] [--json] [--strict]`.
 *
 * Answers "would this Pod's mount work, and if not, why?" without mounting
 * and without privileges, checking in the order a person would: the
 * environment (which credential source, which variables), the token file
 * (its claims decoded without verification), STS, the S3 endpoint
 * (reachability with timings), a ListObjectsV2 of the prefix and a one-byte
 * ranged GET of the first object found. It only reads: nothing is written or
 * deleted. One line per check with a mark, then a summary; --json prints one
 * JSON document instead.
 *
 * Exit status: 0 when a mount would work (warnings allowed: a denied listing
 * or read is a warning, as it is for the mount), 1 when it would fail (with
 * --strict, a denied listing fails, as it does for `irsafs --strict`), 2 for
 * a bad command line. Called from main before anything else is set up; not
 * thread-safe.
 */
#ifndef IRSAFS_APP_DOCTOR_H
#define IRSAFS_APP_DOCTOR_H

/* argv[0] is "doctor". Returns the exit status. */
int doctor_main(int argc, char **argv);

#endif
