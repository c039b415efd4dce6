# The matching engine's events as Python records: engine_types' NamedTuples filled
# in C (inline, so _engine.pyx pays no call for it; no module of its own).
from cpython.long cimport PyLong_FromLongLong
from cpython.object cimport PyTypeObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport int64_t


cdef extern from "Python.h":
    object PyType_GenericAlloc(PyTypeObject* cls, Py_ssize_t n)
    void PyObject_GC_UnTrack(object o)
    bint PyObject_IS_GC(object o)


cdef inline object record(type cls, const int64_t* fields, Py_ssize_t n):
    """A NamedTuple ``cls`` of ``n`` ints, allocated and filled as a tuple is (its
    ``__new__`` would build an argument tuple first and copy it).

    The record holds only ints, so it can be in no reference cycle: it is taken off
    the garbage collector's list, as CPython does for a plain tuple of ints (which it
    does for exact tuples only). Kept records then cost the collector nothing; tracked,
    they made building and keeping 200k of them twice as slow as plain tuples.
    """
    cdef object out = PyType_GenericAlloc(<PyTypeObject*>cls, n)
    cdef object v
    cdef Py_ssize_t i
    for i in range(n):
        v = PyLong_FromLongLong(fields[i])
        Py_INCREF(v)
        PyTuple_SET_ITEM(out, i, v)
    PyObject_GC_UnTrack(out)
    return out


cdef inline int put(tuple t, Py_ssize_t k, object value) except -1:
    """Fill slot ``k`` of the new tuple ``t`` with ``value`` (a reference of its own)."""
    Py_INCREF(value)
    PyTuple_SET_ITEM(t, k, value)
    return 0


cdef inline tuple pair(int64_t a, int64_t b):
    """``(a, b)``, off the cyclic collector's list as ``record`` is: a book's levels as
    ``(price, size)`` (46,000 of them in a Coinbase snapshot)."""
    cdef tuple t = PyTuple_New(2)
    put(t, 0, PyLong_FromLongLong(a))
    put(t, 1, PyLong_FromLongLong(b))
    PyObject_GC_UnTrack(t)
    return t
