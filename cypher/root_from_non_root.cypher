// title: Processes that ran as root started by a non-root user
// description: Processes with effective uid 0 whose real uid, or whose parent's, is not 0
// (setuid programs, sudo). The graph keeps real and effective uids, not the audit login
// uid, so the login is taken as the real uid of the process and of its parent.
// param: since integer = 0 -- epoch nanoseconds
// param: until integer = 4611686018427387904 -- epoch nanoseconds
MATCH (p:Process)
WHERE p.euid = 0 AND p.last >= $since AND p.first <= $until
OPTIONAL MATCH (parent:Process)-[:FORKED]->(p)
WITH p, parent
WHERE p.uid <> 0 OR parent.uid <> 0
RETURN p.host AS host, p.pid AS pid, p.uid AS uid, p.euid AS euid, p.cmdline AS command,
       parent.pid AS parent_pid, parent.uid AS parent_uid, p.first AS first
ORDER BY first, pid
