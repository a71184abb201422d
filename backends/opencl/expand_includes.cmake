# cmake -DINPUT=main.cl -DOUTPUT=expanded.cl -P expand_includes.cmake
cmake_minimum_required(VERSION 3.21)
# Replaces every line `#include "name.cl"` with that file (relative to the
# including file), recursively and once per file, so that the run-time
# OpenCL compiler needs no include path. The text is never split into a
# CMake list, so semicolons survive.
function(expand_file path out_var)
  get_property(seen GLOBAL PROPERTY EXPANDED_FILES)
  if(path IN_LIST seen)
    set(${out_var} "" PARENT_SCOPE)
    return()
  endif()
  set_property(GLOBAL APPEND PROPERTY EXPANDED_FILES ${path})
  get_filename_component(dir ${path} DIRECTORY)
  file(READ ${path} text)
  string(REGEX MATCHALL "#[ \t]*include[ \t]+\"[^\"]+\"[^\n]*" directives "${text}")
  foreach(directive IN LISTS directives)
    string(REGEX REPLACE "^#[ \t]*include[ \t]+\"([^\"]+)\".*$" "\\1" name "${directive}")
    expand_file(${dir}/${name} included)
    string(REPLACE "${directive}" "${included}" text "${text}")
  endforeach()
  set(${out_var} "${text}" PARENT_SCOPE)
endfunction()

expand_file(${INPUT} expanded)
file(WRITE ${OUTPUT} "${expanded}")
