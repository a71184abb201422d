# The NV cooperative-matrix-2 build of the slab scan (EFLA_CM2 in
# chunk_scan_slab_cm.comp): GL_NV_cooperative_matrix2's conversions let an
# accumulator be an A operand, so the state never goes through shared memory
# on its way to a product. No packaged glslangValidator compiles that
# extension; the glslang inside PyPI's slangpy wheel (libslang-glslang) does,
# driven by coopmat2_compile.c. .ci/setup takes that library out of the
# wheel into the tool folder's slang/ (a slangpy installed in the tool venv
# serves too); EFLA_SLANG_GLSLANG names the library explicitly. Without it the KHR
# kernels are the whole coopmat path. Needs coopmat.cmake's compiler and
# spirv-val (included after it).
set(EFLA_SLANG_GLSLANG "" CACHE FILEPATH "libslang-glslang with GL_NV_cooperative_matrix2")

function(efla_find_slang_glslang out_var)
  set(tools_dir $ENV{EFLA_TOOLS_DIR})
  if(NOT tools_dir)
    set(tools_dir $ENV{HOME}/.cache/efla/tools)
  endif()
  if(EFLA_SLANG_GLSLANG)
    set(found ${EFLA_SLANG_GLSLANG})
  else()
    file(GLOB candidates ${tools_dir}/slang/libslang-glslang-*.so
         ${tools_dir}/lib/python3*/site-packages/slangpy/libslang-glslang-*.so)
    set(found "")
    if(candidates)
      list(SORT candidates)
      list(GET candidates -1 found) # the newest version
    endif()
  endif()
  set(${out_var} "${found}" PARENT_SCOPE)
endfunction()

set(coopmat2_embedded)
if(efla_coopmat_compiler)
  efla_find_slang_glslang(efla_slang_glslang)
endif()
if(efla_coopmat_compiler AND efla_slang_glslang)
  # A host tool: built with the host's compiler, run at build time.
  set(compile_tool ${CMAKE_CURRENT_BINARY_DIR}/coopmat2_compile${CMAKE_EXECUTABLE_SUFFIX})
  try_compile(tool_built ${CMAKE_CURRENT_BINARY_DIR}/coopmat2_tool
              SOURCES ${CMAKE_CURRENT_LIST_DIR}/coopmat2_compile.c
              LINK_LIBRARIES ${CMAKE_DL_LIBS}
              C_STANDARD 11
              COPY_FILE ${compile_tool})
  set(probe_spv ${CMAKE_CURRENT_BINARY_DIR}/coopmat2_probe.spv)
  if(tool_built)
    execute_process(
      COMMAND ${compile_tool} ${efla_slang_glslang} ${shader_dir}/chunk_scan_slab_cm.comp
              ${probe_spv} ${probe_spv}.d EFLA_CM2=1
      RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  endif()
  if(tool_built AND rc EQUAL 0)
    message(STATUS "Vulkan NV cooperative-matrix-2 slab scan: ${efla_slang_glslang}")
    set(spv ${spirv_dir}/chunk_scan_slab_cm2.spv)
    set(validate_commands)
    if(efla_spirv_val)
      set(validate_commands
          COMMAND ${CMAKE_COMMAND} -DVALIDATOR=${efla_spirv_val} -DLIB_DIR=${glslang_bin}/../lib
                  -DSPIRV=${spv} -DTARGET_ENV=vulkan1.3 -P ${CMAKE_CURRENT_LIST_DIR}/validate_spirv.cmake)
    endif()
    add_custom_command(
      OUTPUT ${spv}
      COMMAND ${compile_tool} ${efla_slang_glslang} ${shader_dir}/chunk_scan_slab_cm.comp ${spv}
              ${spv}.d EFLA_CM2=1
      ${validate_commands}
      DEPENDS ${shader_dir}/chunk_scan_slab_cm.comp ${CMAKE_CURRENT_LIST_DIR}/coopmat2_compile.c
      DEPFILE ${spv}.d
      COMMENT "Compiling chunk_scan_slab_cm.comp to SPIR-V (NV cooperative matrices 2)"
      VERBATIM)
    efla_embed_file(INPUT ${spv} OUTPUT ${spirv_dir}/chunk_scan_slab_cm2_spv.c
                    SYMBOL efla_vk_spirv_chunk_scan_slab_cm2)
    list(APPEND coopmat2_embedded ${spirv_dir}/chunk_scan_slab_cm2_spv.c)
    target_compile_definitions(efla PRIVATE EFLA_VK_HAVE_COOPMAT2)
  else()
    message(STATUS "Vulkan NV cooperative-matrix-2 slab scan skipped: ${efla_slang_glslang} "
                   "did not compile it")
  endif()
elseif(efla_coopmat_compiler)
  message(STATUS "Vulkan NV cooperative-matrix-2 slab scan skipped: no libslang-glslang "
                 "(pip install slangpy)")
endif()
