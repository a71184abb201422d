# cmake -DVALIDATOR=<spirv-val> -DLIB_DIR=<its lib folder> -DSPIRV=<module>
#       [-DTARGET_ENV=vulkan1.3] -P validate_spirv.cmake
# Validates a compiled SPIR-V module for Vulkan 1.1 (or TARGET_ENV); an invalid one is
# deleted (so that no later build embeds it) and the build stops with
# spirv-val's message.
if(NOT TARGET_ENV)
  set(TARGET_ENV vulkan1.1)
endif()
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${LIB_DIR} ${VALIDATOR} --target-env ${TARGET_ENV}
          ${SPIRV}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  file(REMOVE ${SPIRV})
  message(FATAL_ERROR "${SPIRV} is not valid SPIR-V (spirv-val):\n${out}${err}")
endif()
