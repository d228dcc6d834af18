// title: Processes whose ancestry includes a network-facing server
// description: Descendants of a process that accepted connections (a server), such as a
// shell spawned by a web server, forked after the server first accepted one; only shells
// unless shells_only is false.
// param: shells_only boolean = true -- only processes that executed a shell
// param: since integer = 0 -- epoch nanoseconds
// param: until integer = 4611686018427387904 -- epoch nanoseconds
MATCH (s:Process)-[a:ACCEPTED]->(:Endpoint)
WITH s, min(a.first) AS serving
MATCH path = (s)-[:FORKED*1..20]->(p:Process)-[ex:EXECUTED]->(prog:File)
WHERE ex.first >= $since AND ex.first <= $until
  AND all(step IN relationships(path) WHERE step.first >= serving)
  AND (NOT $shells_only
       OR prog.name IN ['sh', 'bash', 'dash', 'zsh', 'ksh', 'csh', 'tcsh', 'fish', 'busybox'])
RETURN s.host AS host, s.pid AS server_pid, s.cmdline AS server, p.pid AS pid,
       prog.path AS program, p.cmdline AS command, ex.first AS executed
ORDER BY executed, pid, program
