// title: Everything a user did in a time window
// description: Files read, written, executed or deleted and sockets used by the processes
// of one user (real uid) between two times, oldest first.
// param: uid integer -- the real user id
// param: since integer = 0 -- epoch nanoseconds
// param: until integer = 4611686018427387904 -- epoch nanoseconds
MATCH (p:Process)-[e:READ|WROTE|EXECUTED|DELETED|CONNECTED|ACCEPTED|BOUND]->(o)
WHERE p.uid = $uid AND e.last >= $since AND e.first <= $until
  AND labels(o)[0] IN ['File', 'Endpoint']
RETURN p.host AS host, p.pid AS pid, p.cmdline AS command, type(e) AS action,
       coalesce(o.path, o.address) AS object, o.port AS port, e.first AS first, e.last AS last
ORDER BY first, pid, action, object
