// The Python module frcnn_fast._C. Loading it runs the TORCH_LIBRARY registrations of every
// op; its one Python function reports what this binary was compiled with.
#include <Python.h>

#include <string>

#include <c10/util/Exception.h>

#include "cpu/cpu_isa.h"

#ifdef FRCNN_FAST_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#ifndef FRCNN_FAST_TORCH_VERSION
#define FRCNN_FAST_TORCH_VERSION "unknown"
#endif
#ifndef FRCNN_FAST_CUDA_ARCHS
#define FRCNN_FAST_CUDA_ARCHS ""
#endif
#ifndef FRCNN_FAST_CPU_ONLY_REQUESTED
#define FRCNN_FAST_CPU_ONLY_REQUESTED 0
#endif

namespace {

PyObject* build_info(PyObject* /*self*/, PyObject* /*args*/) {
  // Whether the build was asked to leave CUDA out (FRCNN_FAST_CPU_ONLY=1), as opposed to
  // finding no toolkit: a CPU-only binary is then what was wanted.
  PyObject* cpu_only = PyBool_FromLong(FRCNN_FAST_CPU_ONLY_REQUESTED);
#ifdef FRCNN_FAST_WITH_CUDA
  const int cuda = CUDART_VERSION;
  return Py_BuildValue(
      "{s:N,s:s,s:s,s:s,s:N}", "backends", Py_BuildValue("[ss]", "cpu", "cuda"), "cuda_version",
      (std::to_string(cuda / 1000) + "." + std::to_string((cuda % 1000) / 10)).c_str(),
      "cuda_archs", FRCNN_FAST_CUDA_ARCHS, "torch_version", FRCNN_FAST_TORCH_VERSION,
      "cpu_only_requested", cpu_only);
#else
  return Py_BuildValue(
      "{s:N,s:O,s:s,s:s,s:N}", "backends", Py_BuildValue("[s]", "cpu"), "cuda_version", Py_None,
      "cuda_archs", "", "torch_version", FRCNN_FAST_TORCH_VERSION, "cpu_only_requested", cpu_only);
#endif
}

// (chosen, supported): the instruction set the CPU kernels' hot loops run (cpu/cpu_isa.h),
// and the comma-separated sets this processor runs.
PyObject* cpu_isa(PyObject* /*self*/, PyObject* /*args*/) {
  try {
    const char* chosen = frcnn_fast::cpu_isa_name(frcnn_fast::cpu_isa());
    return Py_BuildValue("(ss)", chosen, frcnn_fast::supported_cpu_isas().c_str());
  } catch (const c10::Error& e) {  // a bad FRCNN_FAST_CPU_ISA; the message, not the C++ stack
    PyErr_SetString(PyExc_ValueError, e.what_without_backtrace());
    return nullptr;
  }
}

PyObject* set_cpu_isa(PyObject* /*self*/, PyObject* args) {
  const char* name = nullptr;
  if (!PyArg_ParseTuple(args, "s", &name)) return nullptr;
  try {
    return PyUnicode_FromString(frcnn_fast::set_cpu_isa(name).c_str());
  } catch (const c10::Error& e) {
    PyErr_SetString(PyExc_ValueError, e.what_without_backtrace());
    return nullptr;
  }
}

PyMethodDef methods[] = {
    {"build_info", build_info, METH_NOARGS, "What this binary was compiled with."},
    {"cpu_isa", cpu_isa, METH_NOARGS, "(chosen, supported) CPU instruction sets."},
    {"_set_cpu_isa", set_cpu_isa, METH_VARARGS, "Run the CPU loops compiled for this set."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__C(void) {
  return PyModule_Create(&module);
}
