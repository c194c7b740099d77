ok
${nope}
