/* src/cpu_internal.h - the parsers behind mproc/cpu.h, exposed for tests.
 *
 * Each takes file contents or a root directory instead of reading the real /proc
 * and /sys, so a test can feed it a fake cgroup or sysfs tree.
 */
#ifndef MPROC_CPU_INTERNAL_H
#define MPROC_CPU_INTERNAL_H

/* A cgroup v2 cpu.max ("max 100000", "150000 100000"): the CPUs the quota allows,
 * rounded up (>= 1), or 0 for no limit or unparseable text. */
int mproc__cpu_quota_v2(const char *cpu_max);

/* cgroup v1 cpu.cfs_quota_us and cpu.cfs_period_us contents: CPUs rounded up (>= 1),
 * or 0 for no limit (-1) or unparseable text. */
int mproc__cpu_quota_v1(const char *quota, const char *period);

/* The tightest CPU quota that applies to a process whose /proc/self/cgroup reads
 * proc_self_cgroup, with cgroup file systems mounted under cgroup_root (normally
 * "/sys/fs/cgroup"). Looks at the v2 group ("0::/path": <root>/<path>/cpu.max) and
 * the v1 cpu controller ("N:cpu,...:/path": <root>/cpu,.../<path> and <root>/cpu/<path>,
 * files cpu.cfs_quota_us and cpu.cfs_period_us), each at the group and every ancestor
 * up to the root, skipping missing files and garbage. >= 1, or 0 for no limit. */
int mproc__cpu_quota_from_root(const char *cgroup_root, const char *proc_self_cgroup);

/* Distinct physical cores under a sysfs cpu directory (normally
 * "/sys/devices/system/cpu"): distinct (physical_package_id, die_id, core_id) over
 * cpuN/topology/, skipping CPUs whose cpuN/online reads 0. 0 when nothing is known. */
int mproc__cpu_physical_from_root(const char *sysfs_cpu_root);

#endif
