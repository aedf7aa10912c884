/* Kafka's murmur2 (Utils.murmur2) in C: the pure-Python version in
 * partitioner.py is the reference and the fallback. Every append hashes its
 * stream id, and in Python that was a fifth of a single-event save's client
 * instructions (docs/benchmarks.md). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static PyObject *
murmur2(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)view.buf;
    const Py_ssize_t length = view.len;
    const uint32_t m = 0x5bd1e995u;
    /* Unsigned arithmetic wraps as Java's int multiplication does. */
    uint32_t h = 0x9747b28cu ^ (uint32_t)length;
    const Py_ssize_t words = length / 4;
    for (Py_ssize_t i = 0; i < words; i++) {
        const unsigned char *p = data + 4 * i;
        uint32_t k = (uint32_t)p[0] | ((uint32_t)p[1] << 8) |
                     ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    const Py_ssize_t tail = words * 4;
    switch (length & 3) {
    case 3:
        h ^= (uint32_t)data[tail + 2] << 16;
        /* fall through, as Java's switch does */
    case 2:
        h ^= (uint32_t)data[tail + 1] << 8;
        /* fall through */
    case 1:
        h ^= (uint32_t)data[tail];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    PyBuffer_Release(&view);
    /* The signed 32-bit int the Java client returns. */
    return PyLong_FromLong((long)(int32_t)h);
}

static PyMethodDef methods[] = {
    {"murmur2", murmur2, METH_O,
     "Kafka's murmur2 of a bytes-like key: the signed 32-bit int Java returns."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "framework.log._murmur2", NULL, 0, methods,
};

PyMODINIT_FUNC
PyInit__murmur2(void)
{
    return PyModule_Create(&module);
}
