/*
 * _records.c -- compiled core of the auditd raw-text parser (records.py).
 *
 * AuditParser here behaves exactly like records.PyAuditParser: same outputs (instances of
 * the same AuditEvent / PathItem / Rejected classes), same order, same counters, same
 * bounded memory. records.py documents the policies; this file implements only the hot
 * path and hands everything unusual to the Python code:
 *
 *   feed_line   header scan of "[node=N ]type=T msg=audit(SEC.MSEC:SERIAL): ", the event
 *               key, and the grouping with its pending / done-key / window bookkeeping
 *               (PyAuditParser.feed, _start, _expire, _try_emit, _finish, flush), for
 *               feed() (one line) and feed_block() (a buffer of lines, one call);
 *   fast_build  an event in the common case: one SYSCALL in the kernel's field order,
 *               PATH records without duplicates, at most one simple EXECVE
 *               ("argc=N a0=.. a1=.."), CWD, PROCTITLE, SOCKADDR, FD_PAIR.
 *
 * Whenever fast_build meets anything else -- a duplicate or conflicting record, an
 * unknown field order, a value that does not parse, split EXECVE arguments, a truncated
 * or SYSCALL-less event, any Python exception on the way -- it gives up without side
 * effects on the output and records._build_event builds the event from scratch: reasons
 * and edge-case policies are written once, in Python. Values that repeat are looked up in
 * the parser's memo dicts, the same dicts (same keys, same values) the Python code uses;
 * on a miss the Python parsing function is called and its result memoised, so the rare
 * first sight of an identity, path, cwd or title is parsed by the same code either way.
 * Small caches in front of the dicts (the last identity, cwd, title and millisecond, 64
 * syscall names, the last record's event) save making and hashing keys; their size is
 * fixed.
 *
 * records.py hands over its classes and functions once with bind(); the module keeps
 * them in static storage (single-phase init, one interpreter).
 *
 * Reference counting: functions returning PyObject * return a new reference or NULL with
 * an exception set. Rec entries own their line and offset.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ bindings */

/* Handed over by records.py through bind(). */
static struct {
    PyObject *AuditEvent, *PathItem, *Rejected;  /* output classes */
    PyObject *build_event;      /* _build_event(p, key, recs, offset, final): the policy */
    PyObject *junk_reason;      /* _junk_reason(line) -> str */
    PyObject *bad_bytes;        /* _bad_bytes(line) -> str | None */
    PyObject *late_reason;      /* _late_reason(rtype, key) -> str */
    PyObject *ts_serial;        /* _ts_serial(stamp) -> (ns, serial) */
    PyObject *parse_identity;   /* _parse_identity(ident) -> 9-tuple */
    PyObject *syscall_name;     /* _syscall_name(archsys, enriched) -> str */
    PyObject *path_fields;      /* _path_fields(body) -> PathItem arguments */
    PyObject *parse_cwd;        /* _parse_cwd(body) -> str | None */
    PyObject *proctitle_parts;  /* _proctitle_parts(body) -> tuple | None */
    PyObject *decode_sockaddr;  /* decode_sockaddr(bytes) -> SockAddr */
    PyObject *parse_sockaddr;   /* _parse_sockaddr(body) -> SockAddr */
    PyObject *parse_fd_pair;    /* _parse_fd_pair(body) -> (int, int) */
    PyObject *user_types;       /* frozenset of user-space record types (bytes) */
    Py_ssize_t memo_limit;      /* MEMO_LIMIT */
    Py_ssize_t raw_limit;       /* RAW_LIMIT */
    int bound;
} B;

/* bind() keywords, in the order of the PyObject * fields of B. */
static const char *const BIND_NAMES[] = {
    "AuditEvent", "PathItem", "Rejected", "build_event", "junk_reason", "bad_bytes",
    "late_reason", "ts_serial", "parse_identity", "syscall_name", "path_fields",
    "parse_cwd", "proctitle_parts", "decode_sockaddr", "parse_sockaddr", "parse_fd_pair",
    "user_types",
};
#define N_BIND_OBJECTS ((Py_ssize_t)(sizeof(BIND_NAMES) / sizeof(BIND_NAMES[0])))

static PyObject **
bind_slot(Py_ssize_t i)
{
    PyObject **slots[] = {
        &B.AuditEvent, &B.PathItem, &B.Rejected, &B.build_event, &B.junk_reason,
        &B.bad_bytes, &B.late_reason, &B.ts_serial, &B.parse_identity, &B.syscall_name,
        &B.path_fields, &B.parse_cwd, &B.proctitle_parts, &B.decode_sockaddr,
        &B.parse_sockaddr, &B.parse_fd_pair, &B.user_types,
    };
    return slots[i];
}

/*
 * Direct construction of AuditEvent and PathItem. Their dataclass-generated __init__ only
 * stores its arguments in the slots, and running it costs more than the rest of building
 * an event; so when records._plain_slots vouches for a class (a slots dataclass with the
 * generated __init__ and nothing else: no __post_init__, __new__, __setattr__ or base),
 * a new instance is allocated with the type's tp_alloc and its slots are filled here.
 * Otherwise (type == NULL) the class is called.
 */
typedef struct {
    PyTypeObject *type;  /* owned; NULL: call the class */
    Py_ssize_t n;
    Py_ssize_t offset[24];
} Direct;

static Direct D_EVENT, D_PATH;

/* Resolve the slot offsets of `names` (from bind()); 0 also when `cls` does not qualify. */
static int
direct_setup(Direct *d, PyObject *cls, PyObject *names, Py_ssize_t n)
{
    Py_CLEAR(d->type);
    if (names == Py_None)
        return 0;
    if (!PyType_Check(cls) || !PyTuple_Check(names) || PyTuple_GET_SIZE(names) != n ||
        n > (Py_ssize_t)(sizeof(d->offset) / sizeof(d->offset[0])) ||
        ((PyTypeObject *)cls)->tp_itemsize != 0) {
        PyErr_SetString(PyExc_TypeError, "bind(): bad slot names");
        return -1;
    }
    PyTypeObject *tp = (PyTypeObject *)cls;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *descr = PyDict_GetItemWithError(tp->tp_dict, PyTuple_GET_ITEM(names, i));
        if (descr == NULL && PyErr_Occurred())
            return -1;
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type))
            return 0;
        PyMemberDef *m = ((PyMemberDescrObject *)descr)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY) ||
            m->offset < (Py_ssize_t)sizeof(PyObject) ||
            m->offset + (Py_ssize_t)sizeof(PyObject *) > tp->tp_basicsize)
            return 0;
        d->offset[i] = m->offset;
    }
    d->n = n;
    d->type = (PyTypeObject *)Py_NewRef(cls);
    return 0;
}

/* cls(*args) for a class of bind(), through its Direct when there is one. */
static PyObject *
construct(const Direct *d, PyObject *cls, PyObject *const *args, Py_ssize_t n)
{
    if (d->type == NULL || n != d->n)
        return PyObject_Vectorcall(cls, args, (size_t)n, NULL);
    PyObject *obj = d->type->tp_alloc(d->type, 0);
    if (obj == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        *(PyObject **)((char *)obj + d->offset[i]) = Py_NewRef(args[i]);
    return obj;
}

/* ------------------------------------------------------------------ records */

/* Record types the parser tells apart; everything else is RT_OTHER. */
enum {
    RT_OTHER, RT_SYSCALL, RT_PATH, RT_EXECVE, RT_CWD, RT_PROCTITLE, RT_SOCKADDR,
    RT_FD_PAIR, RT_EOE,
};
#define IS_END(t) ((t) == RT_PROCTITLE || (t) == RT_EOE)
#define IS_COMPLETING(t) ((t) == RT_SYSCALL || (t) == RT_PATH || (t) == RT_EXECVE)

/* One record of a pending event: records._Rec without the objects it does not need yet. */
typedef struct {
    PyObject *line;       /* the bytes fed, possibly still ending in \r / \n (owned) */
    PyObject *offset;     /* the caller's offset (owned) */
    Py_ssize_t end;       /* length of the line without trailing \r and \n */
    Py_ssize_t body;      /* start of the fields: the end of the header match */
    Py_ssize_t tstart;    /* the type name is line[tstart:tstart + tlen] */
    Py_ssize_t tlen;
    int type;             /* RT_* */
} Rec;

/* Header of a record line: spans of node name (node_b == 0: absent), type, stamp. */
typedef struct {
    Py_ssize_t node_a, node_b, type_a, type_b, stamp_a, stamp_b, body;
} Header;

/* Characters of a type name: [A-Za-z0-9_\[\]-]. */
static unsigned char TYPECHAR[256];
/* Hex digit values, -1 for other bytes. */
static signed char HEXVAL[256];

static void
init_tables(void)
{
    for (int c = 0; c < 256; c++) {
        TYPECHAR[c] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                      (c >= '0' && c <= '9') || c == '_' || c == '[' || c == ']' || c == '-';
        HEXVAL[c] = (c >= '0' && c <= '9')   ? (signed char)(c - '0')
                    : (c >= 'a' && c <= 'f') ? (signed char)(c - 'a' + 10)
                    : (c >= 'A' && c <= 'F') ? (signed char)(c - 'A' + 10)
                                             : -1;
    }
}

#define IS_DIGIT(c) ((unsigned char)((c) - '0') < 10)

/* Skip [0-9]+ at *p; 0 if there is no digit. */
static int
skip_digits(const char *s, Py_ssize_t *p, Py_ssize_t n)
{
    Py_ssize_t q = *p;
    while (q < n && IS_DIGIT(s[q]))
        q++;
    if (q == *p)
        return 0;
    *p = q;
    return 1;
}

/*
 * records._HEADER.match on s[:n]:
 *   (?:node=([^ ]+) )?type=([A-Za-z0-9_\[\]-]+) msg=audit\(([0-9]+\.[0-9]+:[0-9]+)\):(?: |$)
 * Every part is deterministic (a greedy run followed by a byte the run cannot contain), so
 * a single forward scan decides the match exactly as the regex does.
 */
static int
scan_header(const char *s, Py_ssize_t n, Header *h)
{
    Py_ssize_t p = 0;
    h->node_a = h->node_b = 0;
    if (n >= 5 && memcmp(s, "node=", 5) == 0) {
        const char *sp = memchr(s + 5, ' ', (size_t)(n - 5));
        if (sp == NULL || sp == s + 5)
            return 0;  /* without the node group the line would need "type=" at 0 */
        h->node_a = 5;
        h->node_b = sp - s;
        p = h->node_b + 1;
    }
    if (n - p < 5 || memcmp(s + p, "type=", 5) != 0)
        return 0;
    p += 5;
    h->type_a = p;
    while (p < n && TYPECHAR[(unsigned char)s[p]])
        p++;
    if (p == h->type_a)
        return 0;
    h->type_b = p;
    if (n - p < 11 || memcmp(s + p, " msg=audit(", 11) != 0)
        return 0;
    p += 11;
    h->stamp_a = p;
    if (!skip_digits(s, &p, n) || p >= n || s[p] != '.')
        return 0;
    p++;
    if (!skip_digits(s, &p, n) || p >= n || s[p] != ':')
        return 0;
    p++;
    if (!skip_digits(s, &p, n))
        return 0;
    h->stamp_b = p;
    if (n - p < 2 || s[p] != ')' || s[p + 1] != ':')
        return 0;
    p += 2;
    if (p < n) {
        if (s[p] != ' ')
            return 0;
        p++;
    }
    h->body = p;
    return 1;
}

static int
record_type(const char *t, Py_ssize_t n)
{
#define IS(lit) (n == (Py_ssize_t)sizeof(lit) - 1 && memcmp(t, lit, sizeof(lit) - 1) == 0)
    switch (n) {
    case 3:
        return IS("CWD") ? RT_CWD : IS("EOE") ? RT_EOE : RT_OTHER;
    case 4:
        return IS("PATH") ? RT_PATH : RT_OTHER;
    case 6:
        return IS("EXECVE") ? RT_EXECVE : RT_OTHER;
    case 7:
        return IS("SYSCALL") ? RT_SYSCALL : IS("FD_PAIR") ? RT_FD_PAIR : RT_OTHER;
    case 8:
        return IS("SOCKADDR") ? RT_SOCKADDR : RT_OTHER;
    case 9:
        return IS("PROCTITLE") ? RT_PROCTITLE : RT_OTHER;
    default:
        return RT_OTHER;
    }
#undef IS
}

static int
is_ascii(const char *s, Py_ssize_t n)
{
    uint64_t acc = 0;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= (unsigned char)s[i];
    return (acc & UINT64_C(0x8080808080808080)) == 0;
}

static inline PyObject *
slice(const char *s, Py_ssize_t a, Py_ssize_t b)
{
    return PyBytes_FromStringAndSize(s + a, b - a);
}

/* line[:end], reusing the object when nothing was stripped. */
static PyObject *
stripped(PyObject *line, Py_ssize_t end)
{
    if (end == PyBytes_GET_SIZE(line))
        return Py_NewRef(line);
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(line), end);
}

/* Rejected(reason, line[:min(end, RAW_LIMIT)], offset); steals `reason`. */
static PyObject *
dead_letter(PyObject *reason, PyObject *line, Py_ssize_t end, PyObject *offset)
{
    if (reason == NULL)
        return NULL;
    PyObject *raw = stripped(line, end < B.raw_limit ? end : B.raw_limit);
    if (raw == NULL) {
        Py_DECREF(reason);
        return NULL;
    }
    PyObject *args[3] = {reason, raw, offset};
    PyObject *dl = PyObject_Vectorcall(B.Rejected, args, 3, NULL);
    Py_DECREF(reason);
    Py_DECREF(raw);
    return dl;
}

/* [item]; steals `item`. */
static PyObject *
list1(PyObject *item)
{
    if (item == NULL)
        return NULL;
    PyObject *l = PyList_New(1);
    if (l == NULL) {
        Py_DECREF(item);
        return NULL;
    }
    PyList_SET_ITEM(l, 0, item);
    return l;
}

/* out += add; steals `add` (a list); returns 0 or -1. */
static int
extend(PyObject *out, PyObject *add)
{
    int r = 0;
    if (PyList_GET_SIZE(add))
        r = PyList_SetSlice(out, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, add);
    Py_DECREF(add);
    return r;
}

/* ------------------------------------------------------------------ pending events */

#define SMALL_RECS 4

/* records._Pending: the records of an event not emitted yet (a value of the pending dict). */
typedef struct {
    PyObject_HEAD
    long long seq;
    int waiting;   /* tried and incomplete: re-try when SYSCALL/PATH/EXECVE arrive */
    int live;      /* in the pending dict */
    Py_ssize_t n, cap;
    Rec *recs;     /* `small` or a PyMem array */
    Rec small[SMALL_RECS];
} Pending;

static void
Pending_dealloc(Pending *ev)
{
    for (Py_ssize_t i = 0; i < ev->n; i++) {
        Py_DECREF(ev->recs[i].line);
        Py_DECREF(ev->recs[i].offset);
    }
    if (ev->recs != ev->small)
        PyMem_Free(ev->recs);
    PyObject_Free(ev);
}

/* Holds bytes and offsets only (no reference cycles), so it is not tracked by the GC. */
static PyTypeObject PendingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ursprung_graph.collectors.auditd._records._Pending",
    .tp_basicsize = sizeof(Pending),
    .tp_dealloc = (destructor)Pending_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Records of one event that has not been emitted yet.",
};

/* Append a record; takes new references to rec->line and rec->offset. */
static int
pending_add(Pending *ev, const Rec *rec)
{
    if (ev->n == ev->cap) {
        Py_ssize_t cap = ev->cap * 2;
        Rec *recs;
        if (ev->recs == ev->small) {
            recs = PyMem_New(Rec, cap);
            if (recs != NULL)
                memcpy(recs, ev->small, sizeof(ev->small));
        }
        else {
            recs = ev->recs;
            PyMem_Resize(recs, Rec, cap);
        }
        if (recs == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        ev->recs = recs;
        ev->cap = cap;
    }
    ev->recs[ev->n] = *rec;
    Py_INCREF(rec->line);
    Py_INCREF(rec->offset);
    ev->n++;
    return 0;
}

static Pending *
pending_new(long long seq, const Rec *rec)
{
    Pending *ev = PyObject_New(Pending, &PendingType);
    if (ev == NULL)
        return NULL;
    ev->seq = seq;
    ev->waiting = 0;
    ev->live = 1;  /* about to be: a failed insertion frees it */
    ev->n = 0;
    ev->cap = SMALL_RECS;
    ev->recs = ev->small;
    if (pending_add(ev, rec) < 0) {
        Py_DECREF(ev);
        return NULL;
    }
    return ev;
}

/* The records as records._Rec tuples (type, line, body start, offset), for Python. */
static PyObject *
pending_recs(Pending *ev)
{
    PyObject *list = PyList_New(ev->n);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < ev->n; i++) {
        Rec *r = &ev->recs[i];
        PyObject *t = slice(PyBytes_AS_STRING(r->line), r->tstart, r->tstart + r->tlen);
        PyObject *line = t ? stripped(r->line, r->end) : NULL;
        PyObject *pos = line ? PyLong_FromSsize_t(r->body) : NULL;
        PyObject *tup = pos ? PyTuple_Pack(4, t, line, pos, r->offset) : NULL;
        Py_XDECREF(t);
        Py_XDECREF(line);
        Py_XDECREF(pos);
        if (tup == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, tup);
    }
    return list;
}

/* ------------------------------------------------------------------ the parser object */

/* The last key looked up in a memo dict (bytes) and its value. */
typedef struct {
    PyObject *key, *value;
} Last;

/* A syscall name and its m_name key: archsys and the enriched part (NULL: none). */
typedef struct {
    PyObject *archsys, *enriched, *name;
} NameEntry;

/* Names cached by a hash of their key: an event's syscall is rarely the previous one's,
 * but a log has only a few dozen (arch, syscall, enriched part) combinations. */
#define NAME_SLOTS 64

typedef struct {
    PyObject_HEAD
    int busy;                   /* in feed / feed_block / flush (they call Python code) */
    PyObject *default_node;
    PyObject *window_obj;       /* `window` as given */
    Py_ssize_t records, skipped;
    long long window;           /* window, clamped so that arithmetic cannot overflow */
    long long seq, expire_at, done_cap;
    PyObject *pending;          /* dict: key -> Pending, in order of first record */
    PyObject *done, *done_old;  /* sets: two generations of emitted keys */
    PyObject *m_ident, *m_ts, *m_name, *m_path, *m_cwd, *m_title;  /* memo dicts */
    /*
     * One-entry caches in front of the memo dicts: the next event usually has the same
     * millisecond, process identity, cwd and title as the previous one, and comparing
     * bytes is cheaper than making and hashing a key. A hit is a value the dict gave.
     */
    PyObject *last_tsb, *last_ts;
    Last c_ident, c_cwd, c_title;
    NameEntry names[NAME_SLOTS];
    /* The event of the last record: the next record usually belongs to it too. */
    PyObject *cur_key;
    Pending *cur_ev;
} Parser;

/*
 * The parser calls Python code (policies, first-sight parsing) while it holds pointers into
 * its pending events; a second thread feeding the same parser meanwhile could move them. A
 * parser is not meant to be shared (PyAuditParser is not thread-safe either): such use is
 * refused instead of crashing.
 */
static PyObject *
busy_error(void)
{
    PyErr_SetString(PyExc_RuntimeError,
                    "AuditParser is already running (shared between threads, or re-entered)");
    return NULL;
}

static int
Parser_traverse(Parser *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->default_node);
    Py_VISIT(self->window_obj);
    Py_VISIT(self->pending);
    Py_VISIT(self->done);
    Py_VISIT(self->done_old);
    Py_VISIT(self->m_ident);
    Py_VISIT(self->m_ts);
    Py_VISIT(self->m_name);
    Py_VISIT(self->m_path);
    Py_VISIT(self->m_cwd);
    Py_VISIT(self->m_title);
    Py_VISIT(self->last_tsb);
    Py_VISIT(self->last_ts);
    Py_VISIT(self->c_ident.key);
    Py_VISIT(self->c_ident.value);
    Py_VISIT(self->c_cwd.key);
    Py_VISIT(self->c_cwd.value);
    Py_VISIT(self->c_title.key);
    Py_VISIT(self->c_title.value);
    for (int i = 0; i < NAME_SLOTS; i++)
        Py_VISIT(self->names[i].name);
    return 0;
}

/* Forget the one-entry caches. */
static void
clear_caches(Parser *self)
{
    Py_CLEAR(self->last_tsb);
    Py_CLEAR(self->last_ts);
    Py_CLEAR(self->c_ident.key);
    Py_CLEAR(self->c_ident.value);
    Py_CLEAR(self->c_cwd.key);
    Py_CLEAR(self->c_cwd.value);
    Py_CLEAR(self->c_title.key);
    Py_CLEAR(self->c_title.value);
    for (int i = 0; i < NAME_SLOTS; i++) {
        Py_CLEAR(self->names[i].archsys);
        Py_CLEAR(self->names[i].enriched);
        Py_CLEAR(self->names[i].name);
    }
    Py_CLEAR(self->cur_key);
    Py_CLEAR(self->cur_ev);
}

static int
Parser_clear(Parser *self)
{
    Py_CLEAR(self->default_node);
    Py_CLEAR(self->window_obj);
    Py_CLEAR(self->pending);
    Py_CLEAR(self->done);
    Py_CLEAR(self->done_old);
    Py_CLEAR(self->m_ident);
    Py_CLEAR(self->m_ts);
    Py_CLEAR(self->m_name);
    Py_CLEAR(self->m_path);
    Py_CLEAR(self->m_cwd);
    Py_CLEAR(self->m_title);
    clear_caches(self);
    return 0;
}

static void
Parser_dealloc(Parser *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Parser_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int
Parser_init(Parser *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"default_node", "window", NULL};
    PyObject *default_node = Py_None, *window = NULL;
    if (!B.bound) {
        PyErr_SetString(PyExc_RuntimeError,
                        "_records.bind() has not been called (import records.py)");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:AuditParser", kwlist, &default_node,
                                     &window))
        return -1;
    if (self->busy) {
        busy_error();
        return -1;
    }
    /* the attribute keeps the object given; arithmetic uses it as a C integer */
    PyObject *index = window == NULL ? PyLong_FromLong(256) : PyNumber_Index(window);
    if (index == NULL)
        return -1;
    int overflow = 0;
    long long w = PyLong_AsLongLongAndOverflow(index, &overflow);
    if (window == NULL)
        window = index;
    else {
        Py_INCREF(window);
        Py_DECREF(index);
    }
    if (w == -1 && PyErr_Occurred()) {
        Py_DECREF(window);
        return -1;
    }
    if (overflow < 0 || (overflow == 0 && w < 0)) {
        Py_DECREF(window);
        PyErr_SetString(PyExc_ValueError, "window must be >= 0");
        return -1;
    }
    /* A window this large never expires anything: 2**40 events do not fit in memory. */
    const long long WINDOW_MAX = 1LL << 40;
    if (overflow > 0 || w > WINDOW_MAX)
        w = WINDOW_MAX;
    Py_XSETREF(self->window_obj, window);
    Py_XSETREF(self->default_node, Py_NewRef(default_node));
    self->window = w;
    self->records = self->skipped = 0;
    self->seq = 0;
    self->expire_at = w;
    self->done_cap = 4 * w > 1024 ? 4 * w : 1024;
    Py_XSETREF(self->pending, PyDict_New());
    Py_XSETREF(self->done, PySet_New(NULL));
    Py_XSETREF(self->done_old, PySet_New(NULL));
    Py_XSETREF(self->m_ident, PyDict_New());
    Py_XSETREF(self->m_ts, PyDict_New());
    Py_XSETREF(self->m_name, PyDict_New());
    Py_XSETREF(self->m_path, PyDict_New());
    Py_XSETREF(self->m_cwd, PyDict_New());
    Py_XSETREF(self->m_title, PyDict_New());
    clear_caches(self);
    if (!self->pending || !self->done || !self->done_old || !self->m_ident || !self->m_ts ||
        !self->m_name || !self->m_path || !self->m_cwd || !self->m_title)
        return -1;
    return 0;
}

/* records._memo_put: a bounded memo dict, cleared wholesale when full. */
static int
memo_put(PyObject *memo, PyObject *key, PyObject *value)
{
    if (PyDict_GET_SIZE(memo) >= B.memo_limit)
        PyDict_Clear(memo);
    return PyDict_SetItem(memo, key, value);
}

/* memo[key], or on a miss fn(key), memoised (a memoised None is a hit): a new reference,
 * NULL on error. */
static PyObject *
memo_get_or_call(PyObject *memo, PyObject *key, PyObject *fn)
{
    PyObject *v = PyDict_GetItemWithError(memo, key);
    if (v != NULL)
        return Py_NewRef(v);
    if (PyErr_Occurred())
        return NULL;
    v = PyObject_CallOneArg(fn, key);
    if (v == NULL)
        return NULL;
    if (memo_put(memo, key, v) < 0) {
        Py_DECREF(v);
        return NULL;
    }
    return v;
}

/* ------------------------------------------------------------------ value parsing */

/* An unsigned hex number of 1..16 digits (int(v, 16) for the plain kernel form). */
static int
parse_hex_u64(const char *s, Py_ssize_t a, Py_ssize_t b, unsigned long long *out)
{
    if (b <= a || b - a > 16)
        return 0;
    unsigned long long v = 0;
    for (Py_ssize_t i = a; i < b; i++) {
        int d = HEXVAL[(unsigned char)s[i]];
        if (d < 0)
            return 0;
        v = (v << 4) | (unsigned)d;
    }
    *out = v;
    return 1;
}

/* A decimal number, optionally negative, of 1..18 digits (int(v) for the plain form). */
static int
parse_dec(const char *s, Py_ssize_t a, Py_ssize_t b, long long *out)
{
    int neg = 0;
    if (a < b && s[a] == '-') {
        neg = 1;
        a++;
    }
    if (b <= a || b - a > 18)
        return 0;
    long long v = 0;
    for (Py_ssize_t i = a; i < b; i++) {
        if (!IS_DIGIT(s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return 1;
}

/* Decoded form of one encoded value (records._value), as spans or a decoded buffer. */
enum { VAL_BAD, VAL_BYTES, VAL_HEX, VAL_NULL };

/*
 * records._value on s[a:b] without raising: VAL_BYTES (the literal bytes are s[*ra:*rb]:
 * a quoted value's inside or an unquoted non-hex literal), VAL_HEX (even-length hex, to
 * be unhexlified), VAL_NULL for "(null)", VAL_BAD for what _value rejects.
 */
static int
classify_value(const char *s, Py_ssize_t a, Py_ssize_t b, Py_ssize_t *ra, Py_ssize_t *rb)
{
    Py_ssize_t n = b - a;
    if (n >= 1 && s[a] == '"') {
        if (n < 2 || s[b - 1] != '"')
            return VAL_BAD;
        *ra = a + 1;
        *rb = b - 1;
        return VAL_BYTES;
    }
    if (n == 6 && memcmp(s + a, "(null)", 6) == 0)
        return VAL_NULL;
    *ra = a;
    *rb = b;
    for (Py_ssize_t i = a; i < b; i++)
        if (HEXVAL[(unsigned char)s[i]] < 0)
            return VAL_BYTES;  /* not hex: a literal such as "?" */
    return n % 2 ? VAL_BAD : VAL_HEX;  /* odd-length hex: a value cut off mid-way */
}

/* Bytes in the text form of names (schema/names.py): UTF-8, each invalid byte as \\xNN,
 * a backslash as two. */
static PyObject *
decode_name(const char *p, Py_ssize_t n)
{
    if (memchr(p, '\\', (size_t)n) == NULL)
        return PyUnicode_DecodeUTF8(p, n, "backslashreplace");
    char *buf = PyMem_Malloc((size_t)(2 * n));
    if (buf == NULL)
        return PyErr_NoMemory();
    Py_ssize_t j = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        buf[j++] = p[i];
        if (p[i] == '\\')
            buf[j++] = '\\';
    }
    PyObject *r = PyUnicode_DecodeUTF8(buf, j, "backslashreplace");
    PyMem_Free(buf);
    return r;
}

/* The bytes of s[a:b] (VAL_HEX: unhexlified) in the text form of names. */
static PyObject *
decode_text(const char *s, Py_ssize_t a, Py_ssize_t b, int kind)
{
    if (kind != VAL_HEX)
        return decode_name(s + a, b - a);
    char small[256];
    Py_ssize_t n = (b - a) / 2;
    char *buf = n <= (Py_ssize_t)sizeof(small) ? small : PyMem_Malloc((size_t)n);
    if (buf == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++)
        buf[i] = (char)((HEXVAL[(unsigned char)s[a + 2 * i]] << 4) |
                        HEXVAL[(unsigned char)s[a + 2 * i + 1]]);
    PyObject *r = decode_name(buf, n);
    if (buf != small)
        PyMem_Free(buf);
    return r;
}

/* Next space-separated token of s[*p:e] (empty tokens skipped); 0 at the end. */
static int
next_token(const char *s, Py_ssize_t *p, Py_ssize_t e, Py_ssize_t *ta, Py_ssize_t *tb)
{
    Py_ssize_t q = *p;
    while (q < e && s[q] == ' ')
        q++;
    if (q >= e) {
        *p = q;
        return 0;
    }
    const char *sp = memchr(s + q, ' ', (size_t)(e - q));
    *ta = q;
    *tb = sp ? sp - s : e;
    *p = *tb;
    return 1;
}

/* End of the raw part of s[a:e] (records._raw_part: up to the first \x1d). */
static Py_ssize_t
raw_end(const char *s, Py_ssize_t a, Py_ssize_t e)
{
    const char *g = a < e ? memchr(s + a, 0x1d, (size_t)(e - a)) : NULL;
    return g ? g - s : e;
}

/*
 * argv of an EXECVE record of the simple form "argc=N a0=V ... a{N-1}=V" (fields in that
 * order, nothing else in the raw part): 1 with *argv set, 0 for anything else (split
 * arguments, other order, missing arguments, bad values), -1 on error.
 */
static int
simple_execve(const char *s, Py_ssize_t p, Py_ssize_t e, PyObject **argv)
{
    Py_ssize_t ta, tb;
    e = raw_end(s, p, e);
    if (!next_token(s, &p, e, &ta, &tb) || tb - ta < 6 || memcmp(s + ta, "argc=", 5) != 0)
        return 0;
    long long argc;
    if (tb - ta - 5 > 6 || s[ta + 5] == '-' || !parse_dec(s, ta + 5, tb, &argc))
        return 0;
    if (argc > (e - p) / 3)
        return 0;  /* each argument takes at least " aN=": cannot all be here */
    PyObject *list = PyList_New((Py_ssize_t)argc);
    if (list == NULL)
        return -1;
    for (long long i = 0; i < argc; i++) {
        char want[24];
        int wl = snprintf(want, sizeof(want), "a%lld=", i);
        Py_ssize_t va, vb;
        if (!next_token(s, &p, e, &ta, &tb) || tb - ta < wl || memcmp(s + ta, want, wl) != 0)
            goto fallback;
        int kind = classify_value(s, ta + wl, tb, &va, &vb);
        if (kind == VAL_BAD)
            goto fallback;
        PyObject *arg = kind == VAL_NULL ? PyUnicode_FromString("(null)")
                                         : decode_text(s, va, vb, kind);
        if (arg == NULL) {
            Py_DECREF(list);
            return -1;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, arg);
    }
    if (next_token(s, &p, e, &ta, &tb))
        goto fallback;  /* more fields: a{i}_len, continuation tokens, ... */
    *argv = list;
    return 1;
fallback:
    Py_DECREF(list);
    return 0;
}

/* FD_PAIR " *fd0=N fd1=N *" (records._FD_PAIR on the raw part): 1 with the pair, 0 for
 * any other form, -1 on error. */
static int
simple_fd_pair(const char *s, Py_ssize_t p, Py_ssize_t e, PyObject **out)
{
    Py_ssize_t ta, tb, ua, ub, xa, xb;
    long long fd0, fd1;
    e = raw_end(s, p, e);
    /* two tokens, one space between them (spaces around are allowed), nothing else */
    if (!next_token(s, &p, e, &ta, &tb) || !next_token(s, &p, e, &ua, &ub) ||
        ua != tb + 1 || next_token(s, &p, e, &xa, &xb))
        return 0;
    if (tb - ta < 5 || memcmp(s + ta, "fd0=", 4) != 0 || s[ta + 4] == '-' ||
        !parse_dec(s, ta + 4, tb, &fd0))
        return 0;
    if (ub - ua < 5 || memcmp(s + ua, "fd1=", 4) != 0 || s[ua + 4] == '-' ||
        !parse_dec(s, ua + 4, ub, &fd1))
        return 0;
    PyObject *a = PyLong_FromLongLong(fd0), *b = a ? PyLong_FromLongLong(fd1) : NULL;
    *out = b ? PyTuple_Pack(2, a, b) : NULL;
    Py_XDECREF(a);
    Py_XDECREF(b);
    return *out ? 1 : -1;
}

/* SOCKADDR "saddr=HEX" alone in the raw part: 1 with the SockAddr, 0 otherwise, -1 error. */
static int
simple_sockaddr(const char *s, Py_ssize_t p, Py_ssize_t e, PyObject **out)
{
    Py_ssize_t ta, tb, va, vb;
    e = raw_end(s, p, e);
    if (!next_token(s, &p, e, &ta, &tb) || tb - ta < 6 || memcmp(s + ta, "saddr=", 6) != 0)
        return 0;
    if (next_token(s, &p, e, &va, &vb))
        return 0;
    if (classify_value(s, ta + 6, tb, &va, &vb) != VAL_HEX || vb - va < 4)
        return 0;  /* quoted, literal or shorter than the family: the Python path decides */
    Py_ssize_t n = (vb - va) / 2;
    PyObject *b = PyBytes_FromStringAndSize(NULL, n);
    if (b == NULL)
        return -1;
    char *buf = PyBytes_AS_STRING(b);
    for (Py_ssize_t i = 0; i < n; i++)
        buf[i] = (char)((HEXVAL[(unsigned char)s[va + 2 * i]] << 4) |
                        HEXVAL[(unsigned char)s[va + 2 * i + 1]]);
    *out = PyObject_CallOneArg(B.decode_sockaddr, b);
    Py_DECREF(b);
    return *out ? 1 : -1;
}

/* ------------------------------------------------------------------ building events */

#define MAX_FAST_PATHS 16

/* The SYSCALL record's parts (records._SYSCALL match), as spans of the line. */
typedef struct {
    Py_ssize_t archsys_a, archsys_b, succ_a, succ_b, exit_a, exit_b, a[4][2];
    Py_ssize_t items_a, items_b, ident_a, ident_b, enr_a, enr_b;
    int has_result, has_enriched;
} SyscallSpans;

/* "name" at *p, then a value up to the next space (`name=([^ ]*) `); advances past it. */
static int
field(const char *s, Py_ssize_t *p, Py_ssize_t e, const char *name, Py_ssize_t nl,
      Py_ssize_t *va, Py_ssize_t *vb)
{
    if (e - *p < nl || memcmp(s + *p, name, (size_t)nl) != 0)
        return 0;
    Py_ssize_t q = *p + nl, r = q;
    while (r < e && s[r] != ' ')  /* values are short: cheaper than a memchr call */
        r++;
    if (r == e)
        return 0;
    *va = q;
    *vb = r;
    *p = r + 1;
    return 1;
}
#define FIELD(name, va, vb) field(s, &p, e, name, (Py_ssize_t)sizeof(name) - 1, va, vb)

/*
 * records._SYSCALL.match(line, pos):
 *   " *(arch=[^ ]* syscall=[^ ]*) (?:success=([^ ]*) exit=([^ ]*) )?"
 *   "a0=([^ ]*) a1=([^ ]*) a2=([^ ]*) a3=([^ ]*) items=([^ ]*) "
 * then ident / enriched split at the first \x1d after the match. 0 when it does not match.
 */
static int
scan_syscall(const char *s, Py_ssize_t p, Py_ssize_t e, SyscallSpans *sc)
{
    Py_ssize_t va, vb;
    while (p < e && s[p] == ' ')
        p++;
    sc->archsys_a = p;
    if (!FIELD("arch=", &va, &vb) || !FIELD("syscall=", &va, &vb))
        return 0;
    sc->archsys_b = vb;
    sc->has_result = 0;
    if (e - p >= 8 && memcmp(s + p, "success=", 8) == 0) {
        /* if the optional group fails, "a0=" cannot match here either: no match */
        if (!FIELD("success=", &sc->succ_a, &sc->succ_b) ||
            !FIELD("exit=", &sc->exit_a, &sc->exit_b))
            return 0;
        sc->has_result = 1;
    }
    if (!FIELD("a0=", &sc->a[0][0], &sc->a[0][1]) || !FIELD("a1=", &sc->a[1][0], &sc->a[1][1]) ||
        !FIELD("a2=", &sc->a[2][0], &sc->a[2][1]) || !FIELD("a3=", &sc->a[3][0], &sc->a[3][1]) ||
        !FIELD("items=", &sc->items_a, &sc->items_b))
        return 0;
    sc->ident_a = p;
    const char *g = memchr(s + p, 0x1d, (size_t)(e - p));
    sc->ident_b = g ? g - s : e;
    sc->has_enriched = g != NULL;
    sc->enr_a = g ? sc->ident_b + 1 : e;
    sc->enr_b = e;
    return 1;
}
#undef FIELD

/* Outcome of fast_build. */
enum { FAST_ERROR = -1, FAST_FALLBACK = 0, FAST_DONE = 1 };

/* Where fast_build gives up: an Exception means "let Python decide", anything else
 * (KeyboardInterrupt, ...) propagates as it would from the Python parser. */
static int
give_up(void)
{
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return FAST_ERROR;
        PyErr_Clear();
    }
    return FAST_FALLBACK;
}

/* Memo lookup of the body of a record (line[body:end]), calling fn on a miss. */
static PyObject *
memo_body(PyObject *memo, const Rec *r, PyObject *fn)
{
    PyObject *body = slice(PyBytes_AS_STRING(r->line), r->body, r->end);
    if (body == NULL)
        return NULL;
    PyObject *v = memo_get_or_call(memo, body, fn);
    Py_DECREF(body);
    return v;
}

/* memo_body through a one-entry cache. */
static PyObject *
memo_body_cached(Last *c, PyObject *memo, const Rec *r, PyObject *fn)
{
    const char *s = PyBytes_AS_STRING(r->line);
    Py_ssize_t n = r->end - r->body;
    if (c->key && PyBytes_GET_SIZE(c->key) == n &&
        memcmp(PyBytes_AS_STRING(c->key), s + r->body, (size_t)n) == 0)
        return Py_NewRef(c->value);
    PyObject *body = slice(s, r->body, r->end);
    if (body == NULL)
        return NULL;
    PyObject *v = memo_get_or_call(memo, body, fn);
    if (v == NULL) {
        Py_DECREF(body);
        return NULL;
    }
    Py_XSETREF(c->key, body);
    Py_XSETREF(c->value, Py_NewRef(v));
    return v;
}

/* Is b (bytes or NULL) equal to s[a:e] (an empty span when absent)? */
static int
same_bytes(PyObject *b, const char *s, Py_ssize_t a, Py_ssize_t e)
{
    Py_ssize_t n = b ? PyBytes_GET_SIZE(b) : 0;
    return n == e - a && memcmp(b ? PyBytes_AS_STRING(b) : "", s + a, (size_t)n) == 0;
}

/* Epoch ns of the stamp's "SEC.MSEC" part (key[a:colon]), through m_ts. */
static PyObject *
event_ts(Parser *self, const char *k, Py_ssize_t a, Py_ssize_t colon, Py_ssize_t kn)
{
    PyObject *last = self->last_tsb;
    if (last && PyBytes_GET_SIZE(last) == colon - a &&
        memcmp(PyBytes_AS_STRING(last), k + a, (size_t)(colon - a)) == 0)
        return Py_NewRef(self->last_ts);
    PyObject *tsb = slice(k, a, colon);
    if (tsb == NULL)
        return NULL;
    PyObject *ts = PyDict_GetItemWithError(self->m_ts, tsb);
    if (ts != NULL)
        Py_INCREF(ts);
    else if (!PyErr_Occurred()) {
        PyObject *stamp = slice(k, a, kn);
        PyObject *pair = stamp ? PyObject_CallOneArg(B.ts_serial, stamp) : NULL;
        Py_XDECREF(stamp);
        if (pair != NULL && PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2)
            ts = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
        else if (pair != NULL)
            PyErr_SetString(PyExc_TypeError, "_ts_serial must return a pair");
        Py_XDECREF(pair);
        if (ts != NULL && memo_put(self->m_ts, tsb, ts) < 0)
            Py_CLEAR(ts);
    }
    if (ts == NULL) {
        Py_DECREF(tsb);
        return NULL;
    }
    Py_XSETREF(self->last_tsb, tsb);
    Py_XSETREF(self->last_ts, Py_NewRef(ts));
    return ts;
}

/*
 * records._build for the common case. FAST_DONE with *res = the output list, or None
 * when the event is incomplete and not final; FAST_FALLBACK when records._build_event
 * must build it; FAST_ERROR with an exception that must propagate.
 */
static int
fast_build(Parser *self, PyObject *key, Pending *ev, int final, PyObject **res)
{
    const Rec *sys = NULL, *cwd = NULL, *title = NULL, *sock = NULL, *fdp = NULL;
    const Rec *exe = NULL, *paths[MAX_FAST_PATHS];
    int np = 0;
    /* Objects below are released at `done`; res_list is the result on success. */
    PyObject *serial = NULL, *ts = NULL, *name = NULL, *ident = NULL, *args = NULL;
    PyObject *exit_ = NULL, *plist = NULL, *argv = NULL, *cwd_v = NULL, *title_v = NULL;
    PyObject *sock_v = NULL, *fdp_v = NULL, *node = NULL, *nrec = NULL, *event = NULL;
    PyObject *archsys = NULL, *enriched = NULL, *name_key = NULL;
    int outcome = FAST_FALLBACK;

    /* group: a second SYSCALL/CWD/PROCTITLE/SOCKADDR/FD_PAIR or EXECVE -> Python */
    for (Py_ssize_t i = 0; i < ev->n; i++) {
        const Rec *r = &ev->recs[i];
        const Rec **slot;
        switch (r->type) {
        case RT_SYSCALL: slot = &sys; break;
        case RT_CWD: slot = &cwd; break;
        case RT_PROCTITLE: slot = &title; break;
        case RT_SOCKADDR: slot = &sock; break;
        case RT_FD_PAIR: slot = &fdp; break;
        case RT_EXECVE: slot = &exe; break;
        case RT_PATH:
            if (np == MAX_FAST_PATHS)
                return FAST_FALLBACK;
            paths[np++] = r;
            continue;
        default:
            continue;
        }
        if (*slot != NULL)
            return FAST_FALLBACK;
        *slot = r;
    }
    if (sys == NULL)
        return FAST_FALLBACK;  /* not a syscall event: skipped (or waiting) by Python */
    /* byte-identical PATH records are duplicates: Python dead-letters them */
    for (int i = 0; i < np; i++)
        for (int j = i + 1; j < np; j++)
            if (paths[i]->end == paths[j]->end &&
                memcmp(PyBytes_AS_STRING(paths[i]->line), PyBytes_AS_STRING(paths[j]->line),
                       (size_t)paths[i]->end) == 0)
                return FAST_FALLBACK;

    /* key: [NODE ]SEC.MSEC:SERIAL */
    const char *k = PyBytes_AS_STRING(key);
    Py_ssize_t kn = PyBytes_GET_SIZE(key), stamp = kn, colon = -1;
    while (stamp > 0 && k[stamp - 1] != ' ')
        stamp--;
    for (Py_ssize_t i = stamp; i < kn; i++)
        if (k[i] == ':') {
            colon = i;
            break;
        }
    long long serial_c;
    if (colon < 0 || kn - colon - 1 > 18 || !parse_dec(k, colon + 1, kn, &serial_c))
        return FAST_FALLBACK;
    if ((serial = PyLong_FromLongLong(serial_c)) == NULL)
        goto done;
    if ((ts = event_ts(self, k, stamp, colon, kn)) == NULL)
        goto done;

    /* SYSCALL */
    const char *s = PyBytes_AS_STRING(sys->line);
    SyscallSpans sc;
    if (!scan_syscall(s, sys->body, sys->end, &sc))
        goto done;  /* another field order: records._syscall_slow */
    int success = 1;
    long long exit_c = 0, items;
    if (sc.has_result) {
        Py_ssize_t n = sc.succ_b - sc.succ_a;
        if (n == 2 && memcmp(s + sc.succ_a, "no", 2) == 0)
            success = 0;
        else if (!(n == 3 && memcmp(s + sc.succ_a, "yes", 3) == 0))
            goto done;
        if (!parse_dec(s, sc.exit_a, sc.exit_b, &exit_c))
            goto done;
    }
    unsigned long long a[4];
    for (int i = 0; i < 4; i++)
        if (!parse_hex_u64(s, sc.a[i][0], sc.a[i][1], &a[i]))
            goto done;
    if (sc.items_b - sc.items_a > 9 || s[sc.items_a] == '-' ||
        !parse_dec(s, sc.items_a, sc.items_b, &items))
        goto done;
    if ((args = PyTuple_New(4)) == NULL)
        goto done;
    for (int i = 0; i < 4; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(a[i]);
        if (v == NULL)
            goto done;
        PyTuple_SET_ITEM(args, i, v);
    }
    exit_ = sc.has_result ? PyLong_FromLongLong(exit_c) : Py_NewRef(Py_None);
    if (exit_ == NULL)
        goto done;
    /* name: memo key archsys, or (archsys, enriched) when there is an enriched part */
    int has_enr = sc.has_enriched && sc.enr_b > sc.enr_a;
    Py_ssize_t enr_b = has_enr ? sc.enr_b : sc.enr_a;
    uint32_t h = 2166136261u;  /* FNV-1a of archsys and the enriched part */
    for (Py_ssize_t i = sc.archsys_a; i < sc.archsys_b; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    for (Py_ssize_t i = sc.enr_a; i < enr_b; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    NameEntry *ne = &self->names[(h ^ (h >> 16)) % NAME_SLOTS];
    if (ne->name && same_bytes(ne->archsys, s, sc.archsys_a, sc.archsys_b) &&
        same_bytes(ne->enriched, s, sc.enr_a, enr_b))
        name = Py_NewRef(ne->name);
    else {
        if ((archsys = slice(s, sc.archsys_a, sc.archsys_b)) == NULL)
            goto done;
        if (has_enr) {
            if ((enriched = slice(s, sc.enr_a, sc.enr_b)) == NULL)
                goto done;
            if ((name_key = PyTuple_Pack(2, archsys, enriched)) == NULL)
                goto done;
        }
        else
            name_key = Py_NewRef(archsys);
        name = PyDict_GetItemWithError(self->m_name, name_key);
        if (name != NULL)
            Py_INCREF(name);
        else if (PyErr_Occurred())
            goto done;
        else {
            PyObject *nargs[2] = {archsys, enriched ? enriched : Py_None};
            if ((name = PyObject_Vectorcall(B.syscall_name, nargs, 2, NULL)) == NULL)
                goto done;
            if (memo_put(self->m_name, name_key, name) < 0)
                goto done;
        }
        Py_XSETREF(ne->archsys, Py_NewRef(archsys));
        Py_XSETREF(ne->enriched, Py_XNewRef(enriched));
        Py_XSETREF(ne->name, Py_NewRef(name));
    }
    Rec idrec = {.line = sys->line, .body = sc.ident_a, .end = sc.ident_b};
    if ((ident = memo_body_cached(&self->c_ident, self->m_ident, &idrec,
                                  B.parse_identity)) == NULL)
        goto done;
    if (!PyTuple_Check(ident) || PyTuple_GET_SIZE(ident) != 9)
        goto done;

    /* PATH: PathItem(*fields), ordered by item; a repeated item is a conflict */
    if ((plist = PyList_New(np)) == NULL)
        goto done;
    long long item_of[MAX_FAST_PATHS];
    for (int i = 0; i < np; i++) {
        PyObject *f = memo_body(self->m_path, paths[i], B.path_fields);
        if (f == NULL)
            goto done;
        if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 6) {
            Py_DECREF(f);
            goto done;
        }
        long long item = PyLong_AsLongLong(PyTuple_GET_ITEM(f, 0));
        PyObject *pi = item == -1 && PyErr_Occurred()
                           ? NULL
                           : construct(&D_PATH, B.PathItem, &PyTuple_GET_ITEM(f, 0), 6);
        Py_DECREF(f);
        if (pi == NULL)
            goto done;
        /* stable insertion sort by item, as list.sort(key=_item_of) */
        int j = i;
        while (j > 0 && item_of[j - 1] > item) {
            item_of[j] = item_of[j - 1];
            PyList_SET_ITEM(plist, j, PyList_GET_ITEM(plist, j - 1));
            j--;
        }
        item_of[j] = item;
        PyList_SET_ITEM(plist, j, pi);
    }
    for (int i = 1; i < np; i++)
        if (item_of[i] == item_of[i - 1])
            goto done;  /* conflicting PATH records */
    if (np > items)
        goto done;      /* more PATH records than items= */
    int missing = np < items;

    /* EXECVE */
    if (exe != NULL) {
        const char *es = PyBytes_AS_STRING(exe->line);
        int r = simple_execve(es, exe->body, exe->end, &argv);
        if (r <= 0)
            goto done;
    }
    else if (!missing && success && PyUnicode_Check(name) &&
             (PyUnicode_CompareWithASCIIString(name, "execve") == 0 ||
              PyUnicode_CompareWithASCIIString(name, "execveat") == 0))
        missing = 1;    /* a successful execve without its arguments */
    if (missing) {
        if (final)
            goto done;  /* truncated: Python emits it with its capture gap */
        *res = Py_NewRef(Py_None);
        outcome = FAST_DONE;
        goto done;
    }

    /* CWD, PROCTITLE, SOCKADDR, FD_PAIR */
    if (title != NULL) {
        PyObject *parts = memo_body_cached(&self->c_title, self->m_title, title,
                                           B.proctitle_parts);
        if (parts == NULL)
            goto done;
        if (PyTuple_CheckExact(parts)) {  /* list(parts) */
            Py_ssize_t n = PyTuple_GET_SIZE(parts);
            if ((title_v = PyList_New(n)) != NULL)
                for (Py_ssize_t i = 0; i < n; i++)
                    PyList_SET_ITEM(title_v, i, Py_NewRef(PyTuple_GET_ITEM(parts, i)));
        }
        else
            title_v = parts == Py_None ? Py_NewRef(Py_None) : PySequence_List(parts);
        Py_DECREF(parts);
        if (title_v == NULL)
            goto done;
    }
    else
        title_v = Py_NewRef(Py_None);
    if (cwd != NULL) {
        if ((cwd_v = memo_body_cached(&self->c_cwd, self->m_cwd, cwd, B.parse_cwd)) == NULL)
            goto done;
    }
    else
        cwd_v = Py_NewRef(Py_None);
    if (sock != NULL) {
        int r = simple_sockaddr(PyBytes_AS_STRING(sock->line), sock->body, sock->end, &sock_v);
        if (r < 0)
            goto done;
        if (r == 0) {
            PyObject *body = slice(PyBytes_AS_STRING(sock->line), sock->body, sock->end);
            sock_v = body ? PyObject_CallOneArg(B.parse_sockaddr, body) : NULL;
            Py_XDECREF(body);
            if (sock_v == NULL)
                goto done;
        }
    }
    else
        sock_v = Py_NewRef(Py_None);
    if (fdp != NULL) {
        int r = simple_fd_pair(PyBytes_AS_STRING(fdp->line), fdp->body, fdp->end, &fdp_v);
        if (r <= 0)
            goto done;
    }
    else
        fdp_v = Py_NewRef(Py_None);
    if (argv == NULL)
        argv = Py_NewRef(Py_None);

    /* node */
    if (stamp > 0)
        node = PyUnicode_DecodeASCII(k, stamp - 1, NULL);
    else
        node = Py_NewRef(self->default_node ? self->default_node : Py_None);
    if (node == NULL)
        goto done;
    if ((nrec = PyLong_FromSsize_t(ev->n)) == NULL)
        goto done;

    /* ident: (ppid, pid, auid, uid, gid, euid, comm, exe, key) */
    PyObject *const *id = &PyTuple_GET_ITEM(ident, 0);
    PyObject *eargs[24] = {
        node, serial, ts, name, success ? Py_True : Py_False, exit_, args,
        id[1], id[0], id[3], id[5], id[4], id[2], id[6], id[7], id[8],
        cwd_v, plist, argv, title_v, sock_v, fdp_v, nrec, ev->recs[0].offset,
    };
    if ((event = construct(&D_EVENT, B.AuditEvent, eargs, 24)) == NULL)
        goto done;
    if ((*res = list1(event)) == NULL) {
        event = NULL;  /* released by list1 */
        goto done;
    }
    event = NULL;
    outcome = FAST_DONE;

done:
    Py_XDECREF(serial);
    Py_XDECREF(ts);
    Py_XDECREF(name);
    Py_XDECREF(ident);
    Py_XDECREF(args);
    Py_XDECREF(exit_);
    Py_XDECREF(plist);
    Py_XDECREF(argv);
    Py_XDECREF(cwd_v);
    Py_XDECREF(title_v);
    Py_XDECREF(sock_v);
    Py_XDECREF(fdp_v);
    Py_XDECREF(node);
    Py_XDECREF(nrec);
    Py_XDECREF(event);
    Py_XDECREF(archsys);
    Py_XDECREF(enriched);
    Py_XDECREF(name_key);
    return outcome == FAST_DONE ? FAST_DONE : give_up();
}

/* ------------------------------------------------------------------ the state machine */

/*
 * PyAuditParser._finish: the event's output (None: incomplete and not final) and, once
 * it has one, its key among the emitted ones. New reference, NULL on error.
 */
static PyObject *
finish(Parser *self, PyObject *key, Pending *ev, int final)
{
    PyObject *res = NULL;
    int r = fast_build(self, key, ev, final, &res);
    if (r == FAST_ERROR)
        return NULL;
    if (r == FAST_FALLBACK) {
        PyObject *recs = pending_recs(ev);
        if (recs == NULL)
            return NULL;
        PyObject *args[5] = {(PyObject *)self, key, recs, ev->recs[0].offset,
                             final ? Py_True : Py_False};
        res = PyObject_Vectorcall(B.build_event, args, 5, NULL);
        Py_DECREF(recs);
        if (res == NULL)
            return NULL;
    }
    if (res != Py_None) {
        if (PySet_Add(self->done, key) < 0) {
            Py_DECREF(res);
            return NULL;
        }
        if (PySet_GET_SIZE(self->done) > self->done_cap) {
            PyObject *fresh = PySet_New(NULL);
            if (fresh == NULL) {
                Py_DECREF(res);
                return NULL;
            }
            Py_SETREF(self->done_old, self->done);
            self->done = fresh;
        }
    }
    return res;
}

/* The oldest pending event (borrowed key and value); 0 if there is none. */
static int
first_pending(Parser *self, PyObject **key, Pending **ev)
{
    Py_ssize_t pos = 0;
    PyObject *v;
    if (!PyDict_Next(self->pending, &pos, key, &v))
        return 0;
    *ev = (Pending *)v;
    return 1;
}

/* Remove `key` from pending and finish its event with final=True; appends to out. */
static int
pop_and_finish(Parser *self, PyObject *key, Pending *ev, PyObject *out)
{
    Py_INCREF(key);
    Py_INCREF(ev);
    PyObject *res = NULL;
    ev->live = 0;
    if (PyDict_DelItem(self->pending, key) == 0)
        res = finish(self, key, ev, 1);
    Py_DECREF(ev);
    Py_DECREF(key);
    if (res == NULL)
        return -1;
    if (res == Py_None) {  /* cannot happen with final=True; keep the invariant anyway */
        Py_DECREF(res);
        return 0;
    }
    return extend(out, res);
}

/* PyAuditParser._expire: complete the oldest events once `window` newer ones started. */
static int
expire(Parser *self, PyObject *out)
{
    long long limit = self->seq - self->window;
    PyObject *key;
    Pending *ev;
    while (first_pending(self, &key, &ev)) {
        if (ev->seq >= limit) {
            self->expire_at = ev->seq + self->window;
            return 0;
        }
        if (pop_and_finish(self, key, ev, out) < 0)
            return -1;
    }
    self->expire_at = self->seq + self->window;
    return 0;
}

/* PyAuditParser._try_emit / the completion in feed: finish(final=False) and, when the
 * event has an output, drop it from pending. New reference (a list), NULL on error. */
static PyObject *
try_emit(Parser *self, PyObject *key, Pending *ev)
{
    Py_INCREF(ev);
    PyObject *res = finish(self, key, ev, 0);
    if (res == Py_None) {
        ev->waiting = 1;
        Py_DECREF(res);
        res = PyList_New(0);
    }
    else if (res != NULL) {
        ev->live = 0;
        if (PyDict_DelItem(self->pending, key) < 0)
            Py_CLEAR(res);
    }
    Py_DECREF(ev);
    return res;
}

/* Make (key, ev) the event of the last record. */
static void
remember(Parser *self, PyObject *key, Pending *ev)
{
    Py_XSETREF(self->cur_key, Py_NewRef(key));
    Py_XSETREF(self->cur_ev, (Pending *)Py_NewRef(ev));
}

/* Is `key` the key of the record with header h (node + b" " + stamp, or stamp)? */
static int
key_is(PyObject *key, const char *s, const Header *h)
{
    const char *k = PyBytes_AS_STRING(key);
    Py_ssize_t kn = PyBytes_GET_SIZE(key), sl = h->stamp_b - h->stamp_a;
    if (h->node_b == 0)
        return kn == sl && memcmp(k, s + h->stamp_a, (size_t)sl) == 0;
    Py_ssize_t nl = h->node_b - h->node_a;
    return kn == nl + 1 + sl && k[nl] == ' ' && memcmp(k, s + h->node_a, (size_t)nl) == 0 &&
           memcmp(k + nl + 1, s + h->stamp_a, (size_t)sl) == 0;
}

/* PyAuditParser._start: the first record of a key, slow path (`late`: the key was
 * emitted already; `user`: a user-space message type). New reference, NULL on error. */
static PyObject *
start(Parser *self, PyObject *key, const Rec *rec, int late, int user)
{
    if (late) {
        self->seq--;  /* not a new serial */
        if (rec->type == RT_EOE)
            return PyList_New(0);
        const char *s = PyBytes_AS_STRING(rec->line);
        PyObject *t = slice(s, rec->tstart, rec->tstart + rec->tlen);
        if (t == NULL)
            return NULL;
        PyObject *why = PyObject_CallFunctionObjArgs(B.late_reason, t, key, NULL);
        Py_DECREF(t);
        return list1(dead_letter(why, rec->line, rec->end, rec->offset));
    }
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    if (self->seq > self->expire_at && expire(self, out) < 0)
        goto error;
    if (user) {
        self->skipped++;
        return out;
    }
    Pending *ev = pending_new(self->seq, rec);
    if (ev == NULL)
        goto error;
    int r = PyDict_SetItem(self->pending, key, (PyObject *)ev);
    if (r == 0)
        remember(self, key, ev);
    Py_DECREF(ev);  /* the dict holds it */
    if (r < 0)
        goto error;
    if (IS_END(rec->type)) {
        PyObject *res = try_emit(self, key, ev);
        if (res == NULL || extend(out, res) < 0)
            goto error;
    }
    return out;
error:
    Py_DECREF(out);
    return NULL;
}

/* Is the record type (line[tstart:tstart+tlen]) a user-space message type? */
static int
is_user_type(const Rec *rec)
{
    PyObject *t = slice(PyBytes_AS_STRING(rec->line), rec->tstart, rec->tstart + rec->tlen);
    if (t == NULL)
        return -1;
    int r = PySet_Contains(B.user_types, t);
    Py_DECREF(t);
    return r;
}

/* key = [node + b" "] + stamp */
static PyObject *
event_key(const char *s, const Header *h)
{
    if (h->node_b == 0)
        return slice(s, h->stamp_a, h->stamp_b);
    Py_ssize_t nl = h->node_b - h->node_a, sl = h->stamp_b - h->stamp_a;
    PyObject *key = PyBytes_FromStringAndSize(NULL, nl + 1 + sl);
    if (key == NULL)
        return NULL;
    char *k = PyBytes_AS_STRING(key);
    memcpy(k, s + h->node_a, (size_t)nl);
    k[nl] = ' ';
    memcpy(k + nl + 1, s + h->stamp_a, (size_t)sl);
    return key;
}

/* A line that is not a record, or a record with bytes auditd never writes. */
static PyObject *
bad_line(PyObject *fn, PyObject *line, Py_ssize_t end, PyObject *offset, int maybe)
{
    PyObject *l = stripped(line, end);
    if (l == NULL)
        return NULL;
    PyObject *why = PyObject_CallOneArg(fn, l);
    Py_DECREF(l);
    if (why == Py_None && maybe) {  /* _bad_bytes: valid UTF-8 in the enriched part */
        Py_DECREF(why);
        return Py_NewRef(Py_None);
    }
    return list1(dead_letter(why, line, end, offset));
}

/* PyAuditParser.feed for one line held as bytes. */
static PyObject *
feed_line(Parser *self, PyObject *line, PyObject *offset)
{
    const char *s = PyBytes_AS_STRING(line);
    Py_ssize_t end = PyBytes_GET_SIZE(line);
    while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r'))
        end--;
    if (end == 0)
        return PyList_New(0);  /* a blank line: skipped, as auparse does */
    Header h;
    if (!scan_header(s, end, &h))
        return bad_line(B.junk_reason, line, end, offset, 0);
    if (!is_ascii(s, end)) {
        PyObject *r = bad_line(B.bad_bytes, line, end, offset, 1);
        if (r != Py_None)
            return r;
        Py_DECREF(r);
    }
    Rec rec = {
        .line = line, .offset = offset, .end = end, .body = h.body,
        .tstart = h.type_a, .tlen = h.type_b - h.type_a,
        .type = record_type(s + h.type_a, h.type_b - h.type_a),
    };
    self->records++;
    PyObject *key, *res = NULL;
    Pending *ev;
    if (self->cur_ev != NULL && self->cur_ev->live && key_is(self->cur_key, s, &h)) {
        key = Py_NewRef(self->cur_key);
        ev = self->cur_ev;
    }
    else {
        if ((key = event_key(s, &h)) == NULL)
            return NULL;
        ev = (Pending *)PyDict_GetItemWithError(self->pending, key);
        if (ev != NULL)
            remember(self, key, ev);
    }
    if (ev == NULL) {
        if (PyErr_Occurred())
            goto out;
        self->seq++;
        int user = 0, late;
        if (rec.type == RT_OTHER && (user = is_user_type(&rec)) < 0)
            goto out;
        if ((late = PySet_Contains(self->done, key)) == 0)
            late = PySet_Contains(self->done_old, key);
        if (late < 0)
            goto out;
        if (self->seq > self->expire_at || IS_END(rec.type) || user || late) {
            res = start(self, key, &rec, late, user);
            goto out;
        }
        ev = pending_new(self->seq, &rec);
        if (ev == NULL)
            goto out;
        int r = PyDict_SetItem(self->pending, key, (PyObject *)ev);
        if (r == 0) {
            remember(self, key, ev);
            res = PyList_New(0);
        }
        Py_DECREF(ev);
        goto out;
    }
    if (pending_add(ev, &rec) < 0)
        goto out;
    if (IS_END(rec.type) || (ev->waiting && IS_COMPLETING(rec.type)))
        res = try_emit(self, key, ev);
    else
        res = PyList_New(0);
out:
    Py_DECREF(key);
    return res;
}

/* ------------------------------------------------------------------ Python methods */

/* A subclass whose __init__ did not call AuditParser.__init__. */
static PyObject *
not_initialised(void)
{
    PyErr_SetString(PyExc_RuntimeError, "AuditParser.__init__ was not called");
    return NULL;
}

PyDoc_STRVAR(feed_doc,
"feed($self, /, line, offset=-1)\n--\n\n"
"One raw line (with or without trailing newline). Returns events completed by it.");

static PyObject *
Parser_feed(Parser *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *line = nargs > 0 ? args[0] : NULL, *offset = nargs > 1 ? args[1] : NULL;
    if (self->pending == NULL)
        return not_initialised();
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "feed() takes at most 2 arguments (%zd given)", nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot = PyUnicode_CompareWithASCIIString(name, "line") == 0     ? &line
                          : PyUnicode_CompareWithASCIIString(name, "offset") == 0 ? &offset
                                                                                 : NULL;
        if (slot == NULL || *slot != NULL) {
            PyErr_Format(PyExc_TypeError, "feed() got an unexpected or repeated argument %R",
                         name);
            return NULL;
        }
        *slot = args[nargs + i];
    }
    if (line == NULL) {
        PyErr_SetString(PyExc_TypeError, "feed() missing required argument 'line'");
        return NULL;
    }
    if (self->busy)
        return busy_error();
    PyObject *off = offset ? Py_NewRef(offset) : PyLong_FromLong(-1);
    if (off == NULL)
        return NULL;
    PyObject *res;
    self->busy = 1;
    if (PyBytes_Check(line))
        res = feed_line(self, line, off);
    else {  /* bytearray, memoryview, ...: parsed as their bytes */
        PyObject *b = PyBytes_FromObject(line);
        res = b ? feed_line(self, b, off) : NULL;
        Py_XDECREF(b);
    }
    self->busy = 0;
    Py_DECREF(off);
    return res;
}

PyDoc_STRVAR(feed_block_doc,
"feed_block($self, data, offset, /)\n--\n\n"
"Feed every line of data that ends in a newline (data[0] is at byte offset `offset`).\n"
"Returns (offset after the line, pending, records, outputs) for each line with outputs.");

/* PyAuditParser.feed_block: feed() for each complete line, without a Python call per
 * line. What comes after the last newline is left to the caller. */
static PyObject *
Parser_feed_block(Parser *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (self->pending == NULL)
        return not_initialised();
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "feed_block() takes exactly 2 arguments");
        return NULL;
    }
    if (self->busy)
        return busy_error();
    long long base = PyLong_AsLongLong(args[1]);
    if (base == -1 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    self->busy = 1;
    PyObject *groups = PyList_New(0);
    const char *s = view.buf;
    Py_ssize_t n = view.len, a = 0;
    while (groups != NULL && a < n) {
        const char *nl = memchr(s + a, '\n', (size_t)(n - a));
        if (nl == NULL)
            break;
        Py_ssize_t b = nl - s + 1, e = b - 1;
        while (e > a && s[e - 1] == '\r')
            e--;  /* feed() strips trailing \r and \n: the line object holds the rest */
        PyObject *line = PyBytes_FromStringAndSize(s + a, e - a);
        PyObject *off = line ? PyLong_FromLongLong(base + a) : NULL;
        PyObject *res = off ? feed_line(self, line, off) : NULL;
        Py_XDECREF(line);
        Py_XDECREF(off);
        if (res == NULL)
            Py_CLEAR(groups);
        else if (PyList_GET_SIZE(res)) {
            PyObject *g = PyTuple_New(4);
            if (g != NULL) {
                PyTuple_SET_ITEM(g, 0, PyLong_FromLongLong(base + b));
                PyTuple_SET_ITEM(g, 1, PyLong_FromSsize_t(PyDict_GET_SIZE(self->pending)));
                PyTuple_SET_ITEM(g, 2, PyLong_FromSsize_t(self->records));
                PyTuple_SET_ITEM(g, 3, Py_NewRef(res));
                if (!PyTuple_GET_ITEM(g, 0) || !PyTuple_GET_ITEM(g, 1) || !PyTuple_GET_ITEM(g, 2))
                    Py_CLEAR(g);
            }
            if (g == NULL || PyList_Append(groups, g) < 0)
                Py_CLEAR(groups);
            Py_XDECREF(g);
        }
        Py_XDECREF(res);
        a = b;
    }
    self->busy = 0;
    PyBuffer_Release(&view);
    return groups;
}

PyDoc_STRVAR(flush_doc,
"flush($self, /)\n--\n\n"
"End of input: emit complete pending events, dead-letter truncated ones.");

static PyObject *
Parser_flush(Parser *self, PyObject *Py_UNUSED(ignored))
{
    if (self->pending == NULL)
        return not_initialised();
    if (self->busy)
        return busy_error();
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    PyObject *key;
    Pending *ev;
    self->busy = 1;
    while (first_pending(self, &key, &ev))
        if (pop_and_finish(self, key, ev, out) < 0) {
            Py_CLEAR(out);
            break;
        }
    self->busy = 0;
    return out;
}

static PyObject *
Parser_get_pending(Parser *self, void *Py_UNUSED(closure))
{
    if (self->pending == NULL)
        return not_initialised();
    return PyLong_FromSsize_t(PyDict_GET_SIZE(self->pending));
}

static PyMethodDef Parser_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))Parser_feed, METH_FASTCALL | METH_KEYWORDS,
     feed_doc},
    {"feed_block", (PyCFunction)(void (*)(void))Parser_feed_block, METH_FASTCALL,
     feed_block_doc},
    {"flush", (PyCFunction)Parser_flush, METH_NOARGS, flush_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Parser_getset[] = {
    {"pending", (getter)Parser_get_pending, NULL, "Events started but not yet emitted.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

#define MEMBER(name, type, field, flags, doc) \
    {name, type, offsetof(Parser, field), flags, doc}
static PyMemberDef Parser_members[] = {
    MEMBER("default_node", T_OBJECT, default_node, 0, "Node of records without node=."),
    MEMBER("window", T_OBJECT, window_obj, READONLY, "Events newer than a pending one "
           "after which it is completed."),
    MEMBER("records", T_PYSSIZET, records, 0, "Audit records read."),
    MEMBER("skipped", T_PYSSIZET, skipped, 0, "Events without a SYSCALL record."),
    MEMBER("_seq", T_LONGLONG, seq, READONLY, NULL),
    MEMBER("_expire_at", T_LONGLONG, expire_at, READONLY, NULL),
    MEMBER("_done_cap", T_LONGLONG, done_cap, READONLY, NULL),
    MEMBER("_done", T_OBJECT, done, READONLY, NULL),
    MEMBER("_done_old", T_OBJECT, done_old, READONLY, NULL),
    MEMBER("_m_ident", T_OBJECT, m_ident, READONLY, NULL),
    MEMBER("_m_ts", T_OBJECT, m_ts, READONLY, NULL),
    MEMBER("_m_name", T_OBJECT, m_name, READONLY, NULL),
    MEMBER("_m_path", T_OBJECT, m_path, READONLY, NULL),
    MEMBER("_m_cwd", T_OBJECT, m_cwd, READONLY, NULL),
    MEMBER("_m_title", T_OBJECT, m_title, READONLY, NULL),
    {NULL, 0, 0, 0, NULL},
};
#undef MEMBER

PyDoc_STRVAR(Parser_doc,
"AuditParser(default_node=None, window=256)\n--\n\n"
"Incremental parser: feed raw lines, get completed events and dead letters.\n\n"
"The compiled core of records.PyAuditParser, with the same outputs and memory bounds.");

static PyType_Slot Parser_slots[] = {
    {Py_tp_doc, (void *)Parser_doc},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, Parser_init},
    {Py_tp_dealloc, Parser_dealloc},
    {Py_tp_traverse, Parser_traverse},
    {Py_tp_clear, Parser_clear},
    {Py_tp_methods, Parser_methods},
    {Py_tp_members, Parser_members},
    {Py_tp_getset, Parser_getset},
    {0, NULL},
};

static PyType_Spec Parser_spec = {
    .name = "ursprung_graph.collectors.auditd._records.AuditParser",
    .basicsize = sizeof(Parser),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = Parser_slots,
};

/* ------------------------------------------------------------------ module */

PyDoc_STRVAR(bind_doc,
"bind(**objects)\n--\n\n"
"Hand over records.py's classes and functions (called once by records.py).");

static PyObject *
bind(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || kwds == NULL) {
        PyErr_SetString(PyExc_TypeError, "bind() takes keyword arguments only");
        return NULL;
    }
    PyObject *objs[N_BIND_OBJECTS];
    for (Py_ssize_t i = 0; i < N_BIND_OBJECTS; i++) {
        objs[i] = PyDict_GetItemString(kwds, BIND_NAMES[i]);
        if (objs[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "bind() missing %s", BIND_NAMES[i]);
            return NULL;
        }
    }
    PyObject *ml = PyDict_GetItemString(kwds, "memo_limit");
    PyObject *rl = PyDict_GetItemString(kwds, "raw_limit");
    if (ml == NULL || rl == NULL) {
        PyErr_SetString(PyExc_TypeError, "bind() missing memo_limit or raw_limit");
        return NULL;
    }
    Py_ssize_t memo_limit = PyLong_AsSsize_t(ml), raw_limit = PyLong_AsSsize_t(rl);
    if ((memo_limit == -1 || raw_limit == -1) && PyErr_Occurred())
        return NULL;
    if (!PyAnySet_Check(objs[N_BIND_OBJECTS - 1])) {
        PyErr_SetString(PyExc_TypeError, "bind(): user_types must be a set");
        return NULL;
    }
    PyObject *event_slots = PyDict_GetItemString(kwds, "event_slots");
    PyObject *path_slots = PyDict_GetItemString(kwds, "path_slots");
    if (event_slots == NULL || path_slots == NULL) {
        PyErr_SetString(PyExc_TypeError, "bind() missing event_slots or path_slots");
        return NULL;
    }
    if (PyDict_GET_SIZE(kwds) != N_BIND_OBJECTS + 4) {
        PyErr_SetString(PyExc_TypeError, "bind() got unexpected keyword arguments");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < N_BIND_OBJECTS; i++)
        Py_XSETREF(*bind_slot(i), Py_NewRef(objs[i]));
    B.memo_limit = memo_limit;
    B.raw_limit = raw_limit;
    if (direct_setup(&D_EVENT, B.AuditEvent, event_slots, 24) < 0 ||
        direct_setup(&D_PATH, B.PathItem, path_slots, 6) < 0) {
        B.bound = 0;
        return NULL;
    }
    B.bound = 1;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"bind", (PyCFunction)(void (*)(void))bind, METH_VARARGS | METH_KEYWORDS, bind_doc},
    {NULL, NULL, 0, NULL},
};

static int
module_clear(PyObject *Py_UNUSED(module))
{
    for (Py_ssize_t i = 0; i < N_BIND_OBJECTS; i++)
        Py_CLEAR(*bind_slot(i));
    Py_CLEAR(D_EVENT.type);
    Py_CLEAR(D_PATH.type);
    B.bound = 0;
    return 0;
}

static void
module_free(void *module)
{
    module_clear((PyObject *)module);
}

static struct PyModuleDef records_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ursprung_graph.collectors.auditd._records",
    .m_doc = "Compiled core of the auditd raw-text parser (see records.py).",
    .m_size = -1,
    .m_methods = module_methods,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__records(void)
{
    init_tables();
    if (PyType_Ready(&PendingType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&records_module);
    if (m == NULL)
        return NULL;
    PyObject *tp = PyType_FromModuleAndSpec(m, &Parser_spec, NULL);
    if (tp == NULL || PyModule_AddObject(m, "AuditParser", tp) < 0) {
        Py_XDECREF(tp);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
