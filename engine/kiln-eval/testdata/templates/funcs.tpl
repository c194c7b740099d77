${upper(name)} ${length(items)}
